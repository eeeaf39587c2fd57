# cuda/*.cu to host C++ for the CUDA emulator (tests/cuda_emu/emu_device.h says what each becomes)
s/([A-Za-z_][A-Za-z_0-9]*(<[A-Za-z_0-9]+>)?)<<<(.*)>>>\(/lora_emu::launcher(\1, "\1", \3)(/
s/extern __shared__ ([A-Za-z_0-9 ]+[A-Za-z_0-9]) +([A-Za-z_0-9]+)\[\];/\1 *\2 = (\1 *)lora_emu_dyn_shared();/

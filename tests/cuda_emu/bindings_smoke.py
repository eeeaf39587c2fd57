"""The Python bindings on the CUDA backend, on the emulator (tests/cuda_emu/python.sh), as
make test runs it: the emulator's liblora.so.0 loads, and a model on "cuda" gives the CPU's
logits within the bf16 tolerance, its greedy tokens, and a training step's loss. Prints
"ok - ..." or "FAIL - ..." lines and "passed failed" last; exits 1 on a failure.

    tests/cuda_emu/python.sh python3 tests/cuda_emu/bindings_smoke.py FIXTURE
"""
import sys

import liblora

BF16 = 2e-2  # the fixtures' bf16 tolerance for logits and losses


def main(fixture):
    passed = failed = 0

    def check(ok, what):
        nonlocal passed, failed
        print("%s - %s" % ("ok" if ok else "FAIL", what))
        passed, failed = passed + ok, failed + (not ok)

    ids = [[1, 5, 9, 2, 7, 3]]
    cpu, gpu = liblora.Model(fixture, device="cpu"), liblora.Model(fixture, device="cuda")
    want = [v for row in cpu.session().logits(ids)[0] for v in row]
    got = [v for row in gpu.session().logits(ids)[0] for v in row]
    big = max(abs(v) for v in want)
    err = max(abs(a - b) for a, b in zip(got, want)) / big
    check(err <= BF16, "logits on cuda within %g of the CPU's (%.2e)" % (BF16, err))
    # greedy on the device (the argmax, the fed stage, the decode graph) as on the CPU, up to
    # a near tie the bf16 error could flip
    g_cpu = cpu.session().generate(ids[0], max_new_tokens=6)
    g_gpu = gpu.session().generate(ids[0], max_new_tokens=6)
    check(len(g_gpu) == 6 and g_gpu[:2] == g_cpu[:2],
          "greedy tokens on cuda %s, on the CPU %s" % (g_gpu, g_cpu))
    labels = [[-100, 5, 9, 2, 7, 3]]
    losses = []
    for m in (cpu, gpu):
        s = m.session()
        opt = liblora.Optimizer(s, train="full", lr=1e-3)
        losses.append(opt.step(ids, labels))
    check(abs(losses[1] - losses[0]) <= BF16 * abs(losses[0]),
          "a full training step's loss on cuda %.5f, on the CPU %.5f" % (losses[1], losses[0]))
    print("%d %d" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

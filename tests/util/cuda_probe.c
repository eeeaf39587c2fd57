#include "cuda_probe.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef LORA_CUDA
#include "cuda/backend_cuda.h"

int tu_cuda_devices(char *why, size_t cap)
{
    int fd[2];
    why[0] = '\0';
    if (pipe(fd) != 0)
        return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        int n = 0;
        if (lora__cuda_device_count(&n) != LORA_OK) {
            ssize_t w = write(fd[1], lora_last_error(), strlen(lora_last_error()));
            (void)w;
        }
        _exit(n > 100 ? 100 : n);
    }
    close(fd[1]);
    ssize_t k = pid > 0 ? read(fd[0], why, cap - 1) : -1;
    why[k > 0 ? k : 0] = '\0';
    close(fd[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 0;
    return WEXITSTATUS(status);
}
#else
int tu_cuda_devices(char *why, size_t cap)
{
    snprintf(why, cap, "built without the CUDA backend (CUDA=0, or no nvcc)");
    return 0;
}
#endif

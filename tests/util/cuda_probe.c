#include "cuda_probe.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef LORA_CUDA
#include "cuda/backend_cuda.h"

/* f's result (0..100) computed in a child process; what it writes to its fd goes to why */
static int in_child(int (*f)(int fd), char *why, size_t cap)
{
    int fd[2];
    why[0] = '\0';
    if (pipe(fd) != 0)
        return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        int r = f(fd[1]);
        _exit(r < 0 ? 0 : r > 100 ? 100 : r);
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

static int count(int fd)
{
    int n = 0;
    if (lora__cuda_device_count(&n) != LORA_OK) {
        ssize_t w = write(fd, lora_last_error(), strlen(lora_last_error()));
        (void)w;
    }
    return n;
}

static int emulated(int fd)
{
    char name[256];
    (void)fd;
    return lora__cuda_probe(0, name, sizeof name) == LORA_OK &&
           strcmp(name, TU_CUDA_EMULATOR) == 0;
}

int tu_cuda_devices(char *why, size_t cap) { return in_child(count, why, cap); }

int tu_cuda_emulated(void)
{
    char why[8];
    return in_child(emulated, why, sizeof why);
}
#else
int tu_cuda_devices(char *why, size_t cap)
{
    snprintf(why, cap, "built without the CUDA backend (CUDA=0, or no nvcc)");
    return 0;
}

int tu_cuda_emulated(void) { return 0; }
#endif

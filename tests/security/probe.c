/* Escape probes run inside a pot: each tries one thing a hostile root process would, and prints
 * "ALLOWED" (exit 0) if the kernel let it, or "DENIED <errno name>" (exit 1).  Built statically by
 * tests/security/conftest.py, because a pot holds no compiler and no interpreter. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <sys/sysmacros.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int result(long rc) {
    if (rc >= 0) { puts("ALLOWED"); return 0; }
    printf("DENIED %s\n", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    return 1;
}

static long keyctl_read_named(const char *desc) {
    /* find a "user" key by description in the user keyring, then read it */
    long id = syscall(SYS_keyctl, 10 /* KEYCTL_SEARCH */, -4 /* user keyring */, "user", desc, 0);
    if (id < 0) return id;
    char buf[256];
    long n = syscall(SYS_keyctl, 11 /* KEYCTL_READ */, id, buf, sizeof buf - 1);
    if (n >= 0) { buf[n < 255 ? n : 255] = 0; printf("secret: %s\n", buf); }
    return n;
}

/* Scan every process's descriptors, root and cwd for `seconds`; print what reached the host: a
 * marker file only the host has, read through /proc/PID/root, cwd or an fd of a directory. */
static int watch(const char *marker, double seconds) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long scans = 0, opened = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > seconds) break;
        DIR *proc = opendir("/proc");
        struct dirent *p;
        while (proc && (p = readdir(proc))) {
            if (p->d_name[0] < '1' || p->d_name[0] > '9') continue;
            char path[512], fdp[1024];
            const char *links[] = {"root", "cwd"};
            for (int i = 0; i < 2; i++) {
                snprintf(path, sizeof path, "/proc/%s/%s%s", p->d_name, links[i], marker);
                if (access(path, F_OK) == 0) { printf("ESCAPE via %s\n", path); fflush(stdout); }
            }
            snprintf(path, sizeof path, "/proc/%s/fd", p->d_name);
            DIR *fds = opendir(path);
            struct dirent *f;
            while (fds && (f = readdir(fds))) {
                if (f->d_name[0] == '.') continue;
                snprintf(fdp, sizeof fdp, "%s/%s", path, f->d_name);
                int fd = open(fdp, O_RDONLY | O_NONBLOCK);
                if (fd < 0) continue;
                opened++;
                char target[512] = "";
                ssize_t n = readlink(fdp, target, sizeof target - 1);
                if (n > 0) target[n] = 0;
                struct stat st;
                if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && faccessat(fd, marker + 1, F_OK, 0) == 0)
                    printf("ESCAPE via directory %s -> %s\n", fdp, target);
                if (strstr(target, "ladle.db") || strstr(target, ".sock"))
                    printf("ESCAPE via %s -> %s\n", fdp, target);
                close(fd);
            }
            if (fds) closedir(fds);
        }
        if (proc) closedir(proc);
        scans++;
    }
    printf("scans %ld opened %ld\n", scans, opened);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *what = argv[1];
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(what, "keyctl-read")) return result(keyctl_read_named(arg));
    if (!strcmp(what, "add-key")) return result(syscall(SYS_add_key, "user", "ladle-pot", "x", 1, -4));
    if (!strcmp(what, "bpf")) {
        union bpf_attr a; memset(&a, 0, sizeof a);
        a.map_type = BPF_MAP_TYPE_ARRAY; a.key_size = 4; a.value_size = 4; a.max_entries = 1;
        return result(syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a));
    }
    if (!strcmp(what, "perf-event-open")) {
        struct perf_event_attr a; memset(&a, 0, sizeof a);
        a.type = PERF_TYPE_SOFTWARE; a.size = sizeof a; a.config = PERF_COUNT_SW_CPU_CLOCK;
        return result(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    }
    if (!strcmp(what, "userfaultfd")) return result(syscall(SYS_userfaultfd, 0));
    if (!strcmp(what, "unshare-user")) return result(unshare(CLONE_NEWUSER));
    if (!strcmp(what, "clone-user")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        return result(pid);
    }
    if (!strcmp(what, "unshare-mount")) return result(unshare(CLONE_NEWNS));
    if (!strcmp(what, "kexec-load")) return result(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(what, "open-by-handle")) {
        char buf[sizeof(struct file_handle) + 128];
        struct file_handle *h = (struct file_handle *)buf;
        h->handle_bytes = 8; h->handle_type = 1; memset(h->f_handle, 0, 8);
        ((unsigned *)h->f_handle)[0] = 2;  /* inode 2: a file system's root */
        return result(syscall(SYS_open_by_handle_at, AT_FDCWD, h, O_RDONLY));
    }
    if (!strcmp(what, "init-module")) return result(syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(what, "mount-proc")) { mkdir("/tmp/p", 0700); return result(mount("proc", "/tmp/p", "proc", 0, NULL)); }
    if (!strcmp(what, "mount-devtmpfs")) { mkdir("/tmp/d", 0700); return result(mount("devtmpfs", "/tmp/d", "devtmpfs", 0, NULL)); }
    if (!strcmp(what, "remount-root-rw")) return result(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
    if (!strcmp(what, "setns-host")) {
        int fd = open(arg, O_RDONLY);
        if (fd < 0) return result(-1);
        return result(setns(fd, 0));
    }
    if (!strcmp(what, "iopl")) return result(syscall(SYS_iopl, 3));
    if (!strcmp(what, "ioperm")) return result(syscall(SYS_ioperm, 0x80, 1, 1));
    if (!strcmp(what, "swapoff")) return result(syscall(SYS_swapoff, "/nonexistent"));
    if (!strcmp(what, "clock-settime")) {
        struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
        return result(clock_settime(CLOCK_REALTIME, &now));
    }
    if (!strcmp(what, "io-uring")) { char p[120] = {0}; return result(syscall(425 /* io_uring_setup */, 1, p)); }
    if (!strcmp(what, "mknod-char")) {
        unsigned maj, min; sscanf(argv[3], "%u:%u", &maj, &min);
        return result(mknod(arg, S_IFCHR | 0600, makedev(maj, min)));
    }
    if (!strcmp(what, "mknod-block")) {
        unsigned maj, min; sscanf(argv[3], "%u:%u", &maj, &min);
        return result(mknod(arg, S_IFBLK | 0600, makedev(maj, min)));
    }
    if (!strcmp(what, "open-rw")) { int fd = open(arg, O_RDWR | O_NONBLOCK); return result(fd); }
    if (!strcmp(what, "watch")) return watch(arg, atof(argv[3]));
    fprintf(stderr, "unknown probe %s\n", what);
    return 2;
}

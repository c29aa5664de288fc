/* line_server.c: a TCP test peer on 127.0.0.1 for socketTextStream specs, driven by commands
 * on stdin.
 *
 * usage: line_server [PORT]      (no PORT or 0: an ephemeral port)
 * Prints "PORT <n>" on stdout (flushed) once listening, then runs one command per stdin line:
 *   accept          wait (at most 60 s) for a client; it becomes the current client
 *   send <text>     send text + "\n" to the current client
 *   sendraw <hex>   send the exact bytes written as hex digits (e.g. "610d0a" for "a\r\n")
 *   repeat <n> <text>  send text n times, then "\n" (long lines without a long command)
 *   lines <n> <text>   send n lines "<text>"
 *   pace <n> <ms> <text>  send n lines "<text> <i>" (i = 1..n), one every ms milliseconds
 *   align <period> <offset>  wait until the wall clock (epoch ms) is offset past a multiple of
 *                   period: a spec times bursts against batch boundaries with it
 *   close           close the current client
 *   sleep <ms>      pause
 *   quit            exit (so does end of input, and 60 s without a command)
 * Errors go to stderr prefixed "line_server:"; a send to a client that went away is reported
 * and ignored, so a spec's script of commands always runs to its end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IDLE_MS 60000

static int listener = -1, client = -1;

/* Reads one command line (without its '\n') into a growing buffer. Returns its length, or -1
 * at end of input or after IDLE_MS without input. */
static long read_command(char **buf, size_t *cap)
{
    static char in[65536];
    static size_t have = 0, start = 0;
    size_t len = 0;

    for (;;) {
        char *nl = memchr(in + start, '\n', have - start);
        size_t chunk = nl ? (size_t) (nl - (in + start)) : have - start;

        if (len + chunk + 1 > *cap) {
            size_t ncap = *cap ? *cap : 4096;
            char *p;
            while (ncap < len + chunk + 1)
                ncap *= 2;
            p = realloc(*buf, ncap);
            if (p == NULL) {
                fprintf(stderr, "line_server: out of memory\n");
                exit(1);
            }
            *buf = p;
            *cap = ncap;
        }
        memcpy(*buf + len, in + start, chunk);
        len += chunk;
        (*buf)[len] = '\0';
        if (nl) {
            start += chunk + 1;
            return (long) len;
        }
        start = have = 0;
        {
            struct pollfd p = { .fd = 0, .events = POLLIN };
            ssize_t n;
            int r = poll(&p, 1, IDLE_MS);

            if (r == 0) {
                fprintf(stderr, "line_server: idle for %d ms, exiting\n", IDLE_MS);
                return -1;
            }
            if (r < 0 && errno == EINTR)
                continue;
            n = read(0, in, sizeof in);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return len > 0 ? (long) len : -1;
            have = (size_t) n;
        }
    }
}

static void send_all(const char *p, size_t n)
{
    if (client < 0) {
        fprintf(stderr, "line_server: send with no client (accept first)\n");
        return;
    }
    while (n > 0) {
        ssize_t w = send(client, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            fprintf(stderr, "line_server: send failed: %s\n", strerror(errno));
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

static void do_accept(void)
{
    struct pollfd p = { .fd = listener, .events = POLLIN };
    int r;

    if (client >= 0)
        close(client);
    client = -1;
    do
        r = poll(&p, 1, IDLE_MS);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        fprintf(stderr, "line_server: no client within %d ms\n", IDLE_MS);
        return;
    }
    client = accept(listener, NULL, NULL);
    if (client < 0)
        fprintf(stderr, "line_server: accept failed: %s\n", strerror(errno));
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long long epoch_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    int one = 1, port = argc > 1 ? atoi(argv[1]) : 0;
    char *cmd = NULL;
    size_t cap = 0;
    long len;

    signal(SIGPIPE, SIG_IGN);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) {
        fprintf(stderr, "line_server: socket: %s\n", strerror(errno));
        return 1;
    }
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((unsigned short) port);
    if (bind(listener, (struct sockaddr *) &sa, sizeof sa) != 0 || listen(listener, 16) != 0 ||
        getsockname(listener, (struct sockaddr *) &sa, &salen) != 0) {
        fprintf(stderr, "line_server: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    printf("PORT %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    while ((len = read_command(&cmd, &cap)) >= 0) {
        if (len > 0 && cmd[len - 1] == '\r')
            cmd[--len] = '\0';
        if (strcmp(cmd, "accept") == 0) {
            do_accept();
        } else if (strncmp(cmd, "send ", 5) == 0 || strcmp(cmd, "send") == 0) {
            cmd[len] = '\n';  /* the terminator goes out with the text */
            send_all(cmd + (len > 4 ? 5 : 4), (size_t) (len > 4 ? len - 5 : 0) + 1);
        } else if (strncmp(cmd, "sendraw ", 8) == 0) {
            long i, n = 0;
            for (i = 8; i + 1 < len; i += 2) {
                int hi = hexval(cmd[i]), lo = hexval(cmd[i + 1]);
                if (hi < 0 || lo < 0) {
                    fprintf(stderr, "line_server: sendraw: bad hex at column %ld\n", i + 1);
                    n = -1;
                    break;
                }
                cmd[n++] = (char) (hi * 16 + lo);
            }
            if (n >= 0)
                send_all(cmd, (size_t) n);
        } else if (strncmp(cmd, "repeat ", 7) == 0) {
            char *text = NULL;
            long i, n = strtol(cmd + 7, &text, 10);
            size_t tlen;
            if (text != NULL && *text == ' ')
                text++;
            tlen = strlen(text);
            for (i = 0; i < n; i++)
                send_all(text, tlen);
            send_all("\n", 1);
        } else if (strncmp(cmd, "lines ", 6) == 0) {
            char *text = NULL;
            long i, n = strtol(cmd + 6, &text, 10);
            if (text != NULL && *text == ' ')
                text++;
            for (i = 0; i < n; i++) {
                send_all(text, strlen(text));
                send_all("\n", 1);
            }
        } else if (strncmp(cmd, "pace ", 5) == 0) {
            char *rest = NULL, *text = NULL, line[4200];
            long i, n = strtol(cmd + 5, &rest, 10), ms = strtol(rest, &text, 10);
            long long start = epoch_ms();
            if (text != NULL && *text == ' ')
                text++;
            for (i = 1; i <= n; i++) {
                /* Against the clock, not sleep after sleep: no drift over a long run. */
                long long due = start + (i - 1) * ms, now = epoch_ms();
                int k;
                if (due > now)
                    sleep_ms((long) (due - now));
                k = snprintf(line, sizeof line, "%.4000s %ld\n", text, i);
                send_all(line, (size_t) k);
            }
        } else if (strncmp(cmd, "align ", 6) == 0) {
            char *rest = NULL;
            long period = strtol(cmd + 6, &rest, 10), offset = strtol(rest, NULL, 10);
            if (period > 0) {
                long long now = epoch_ms(), at = now - now % period + offset;
                while (at <= now)
                    at += period;
                sleep_ms((long) (at - now));
            }
        } else if (strcmp(cmd, "close") == 0) {
            if (client >= 0)
                close(client);
            client = -1;
        } else if (strncmp(cmd, "sleep ", 6) == 0) {
            sleep_ms(atol(cmd + 6));
        } else if (strcmp(cmd, "quit") == 0) {
            break;
        } else if (len > 0) {
            fprintf(stderr, "line_server: unknown command '%.40s'\n", cmd);
        }
    }
    if (client >= 0)
        close(client);
    close(listener);
    free(cmd);
    return 0;
}

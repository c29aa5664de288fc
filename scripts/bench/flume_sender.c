/* flume_sender.c - owns the Flume benchmark's sender: a Flume agent's Avro sink reduced to its
 * wire work: connects to an Avro source, sends the lines of a file as events (no headers) in
 * appendBatch calls of BATCH events over Avro's Netty framing, one call at a time as an agent's
 * sink does, and checks that every answer is OK. The handshake offers the protocol hash given
 * in hex (python3-avro's, see scripts/peers/flume_avro.py). Summary on stderr.
 *
 * usage: flume_sender HOST PORT FILE BATCH HASHHEX */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { unsigned char *p; size_t len, cap; } buf_t;

static void die(const char *what)
{
    fprintf(stderr, "flume_sender: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static void put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        if ((b->p = realloc(b->p, b->cap)) == NULL)
            die("out of memory");
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void put_long(buf_t *b, int64_t v)
{
    uint64_t z = ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
    unsigned char t[10];
    size_t n = 0;

    while (z >= 0x80) {
        t[n++] = (unsigned char) (z | 0x80);
        z >>= 7;
    }
    t[n++] = (unsigned char) z;
    put(b, t, n);
}

static void put_be32(buf_t *b, uint32_t v)
{
    unsigned char t[4] = { v >> 24, v >> 16, v >> 8, v };
    put(b, t, 4);
}

static void read_full(int fd, void *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0)
            die(r == 0 ? "the source closed the connection" : "read");
        p = (char *) p + r;
        n -= (size_t) r;
    }
}

static void write_full(int fd, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r <= 0)
            die("write");
        p = (const char *) p + r;
        n -= (size_t) r;
    }
}

int main(int argc, char **argv)
{
    unsigned char hash[16], hdr[8], *resp = NULL;
    struct sockaddr_in sa;
    buf_t body = { 0 }, frame = { 0 };
    size_t cap = 0, events = 0, calls = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    int fd, one = 1, handshaken = 0, batch, i;
    uint32_t serial = 0;
    FILE *f;
    struct timespec t0, t1;

    if (argc != 6 || strlen(argv[5]) != 32) {
        fprintf(stderr, "usage: flume_sender HOST PORT FILE BATCH HASHHEX\n");
        return 2;
    }
    for (i = 0; i < 16; i++)
        sscanf(argv[5] + 2 * i, "%2hhx", &hash[i]);
    batch = atoi(argv[4]);
    if ((f = fopen(argv[3], "r")) == NULL)
        die(argv[3]);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa))
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int k = 0;

        body.len = 0;
        if (!handshaken) {  /* HandshakeRequest: clientHash, clientProtocol null, serverHash, meta null */
            put(&body, hash, 16);
            put_long(&body, 0);
            put(&body, hash, 16);
            put_long(&body, 0);
        }
        put_long(&body, 0);  /* call metadata */
        put_long(&body, 11);
        put(&body, "appendBatch", 11);
        /* one array block of up to `batch` events, filled below; its count is patched in */
        {
            buf_t evs = { 0 };
            while (k < batch && (n = getline(&line, &lcap, f)) > 0) {
                if (line[n - 1] == '\n')
                    n--;
                put_long(&evs, 0);  /* headers: an empty map */
                put_long(&evs, n);
                put(&evs, line, (size_t) n);
                k++;
            }
            if (k == 0) {
                free(evs.p);
                break;
            }
            put_long(&body, k);
            put(&body, evs.p, evs.len);
            put_long(&body, 0);
            free(evs.p);
        }
        frame.len = 0;
        put_be32(&frame, ++serial);
        put_be32(&frame, 1);
        put_be32(&frame, (uint32_t) body.len);
        put(&frame, body.p, body.len);
        write_full(fd, frame.p, frame.len);
        /* the answer: serial, buffers, each length-prefixed; the status is the last byte */
        {
            uint32_t nb, total = 0, j;
            read_full(fd, hdr, 8);
            nb = ntohl(*(uint32_t *) (hdr + 4));
            for (j = 0; j < nb; j++) {
                uint32_t len;
                read_full(fd, &len, 4);
                len = ntohl(len);
                if (total + len > cap) {
                    cap = (total + len) * 2;
                    if ((resp = realloc(resp, cap)) == NULL)
                        die("out of memory");
                }
                read_full(fd, resp + total, len);
                total += len;
            }
            if (total < 2 || resp[total - 1] != 0 || resp[total - 2] != 0) {
                errno = 0;
                die("an answer other than OK");
            }
        }
        handshaken = 1;
        events += (size_t) k;
        calls++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "flume_sender: %zu events in %zu calls, %.2f s\n", events, calls,
            (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9);
    close(fd);
    fclose(f);
    free(line);
    free(resp);
    free(body.p);
    free(frame.p);
    return 0;
}

/* sh_in_kafka_zk.c: the brokers of a Kafka cluster as Kafka registers them in ZooKeeper
 * (/brokers/ids/<id> = {"host": ..., "port": ...}), read with ZooKeeper's protocol over TCP
 * (createStream's zkQuorum). */
#include "sh_common.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define ZK_GET_CHILDREN 8
#define ZK_GET_DATA 4
#define MAX_REPLY (1 << 20)

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int put(buf_t *b, const void *x, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        if ((p = sh_realloc(b->p, cap)) == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, x, n);
    b->len += n;
    return 0;
}

static int put_i32(buf_t *b, int32_t v)
{
    uint32_t n = htonl((uint32_t) v);
    return put(b, &n, 4);
}

static int put_i64(buf_t *b, int64_t v)
{
    return put_i32(b, (int32_t) ((uint64_t) v >> 32)) || put_i32(b, (int32_t) (v & 0xffffffff));
}

static int put_str(buf_t *b, const char *s)
{
    return put_i32(b, (int32_t) strlen(s)) || put(b, s, strlen(s));
}

/* Reading a reply: *pos advances; -1 when the reply is shorter than what is read. */
static int get_i32(const char *p, size_t len, size_t *pos, int32_t *v)
{
    uint32_t n;

    if (*pos + 4 > len)
        return -1;
    memcpy(&n, p + *pos, 4);
    *pos += 4;
    *v = (int32_t) ntohl(n);
    return 0;
}

static int io_all(int fd, char *p, size_t n, int writing, int timeout_ms)
{
    while (n > 0) {
        struct pollfd pfd = { fd, (short) (writing ? POLLOUT : POLLIN), 0 };
        ssize_t r;

        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -1;
        r = writing ? write(fd, p, n) : read(fd, p, n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t) r;
    }
    return 0;
}

/* Sends one length-framed packet and reads the framed reply into *reply (caller frees). */
static int exchange(int fd, buf_t *req, char **reply, size_t *rlen, int timeout_ms)
{
    uint32_t n = htonl((uint32_t) req->len);
    int32_t len;
    size_t pos = 0;
    char head[4];

    if (io_all(fd, (char *) &n, 4, 1, timeout_ms) || io_all(fd, req->p, req->len, 1, timeout_ms) ||
        io_all(fd, head, 4, 0, timeout_ms) || get_i32(head, 4, &pos, &len) || len < 0 || len > MAX_REPLY)
        return -1;
    *reply = sh_malloc((size_t) len);
    if (*reply == NULL || io_all(fd, *reply, (size_t) len, 0, timeout_ms)) {
        sh_free(*reply);
        *reply = NULL;
        return -1;
    }
    *rlen = (size_t) len;
    return 0;
}

/* A request (getChildren or getData of path); returns the reply's body after its header, or
 * NULL with *zerr set to ZooKeeper's error code (0 when the connection failed). */
static char *request(int fd, int xid, int type, const char *path, size_t *blen, size_t *bpos,
                     int32_t *zerr, int timeout_ms)
{
    buf_t req = { 0 };
    char *reply = NULL;
    size_t len = 0, pos = 0;
    int32_t rxid, zxid_hi, zxid_lo, err = 0;

    *zerr = 0;
    if (put_i32(&req, xid) || put_i32(&req, type) || put_str(&req, path) || put(&req, "\0", 1) ||
        exchange(fd, &req, &reply, &len, timeout_ms)) {
        sh_free(req.p);
        return NULL;
    }
    sh_free(req.p);
    if (get_i32(reply, len, &pos, &rxid) || get_i32(reply, len, &pos, &zxid_hi) ||
        get_i32(reply, len, &pos, &zxid_lo) || get_i32(reply, len, &pos, &err) || err != 0) {
        *zerr = err ? err : -1;
        sh_free(reply);
        return NULL;
    }
    *blen = len;
    *bpos = pos;
    return reply;
}

static int connect_to(const char *host, const char *port, int timeout_ms)
{
    struct addrinfo hints = { 0 }, *res = NULL, *ai;
    int fd = -1;

    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Opens a session with the server at host:port; the socket, or -1. */
static int open_session(const char *host, const char *port, int timeout_ms)
{
    buf_t req = { 0 };
    char zeros[16] = { 0 }, *reply = NULL;
    size_t len = 0;
    int fd = connect_to(host, port, timeout_ms);

    if (fd < 0)
        return -1;
    if (put_i32(&req, 0) || put_i64(&req, 0) || put_i32(&req, timeout_ms) || put_i64(&req, 0) ||
        put_i32(&req, 16) || put(&req, zeros, 16) || exchange(fd, &req, &reply, &len, timeout_ms) ||
        len < 20) {
        close(fd);
        fd = -1;
    }
    sh_free(req.p);
    sh_free(reply);
    return fd;
}

/* The value of "key": a string or a number, from a broker's JSON registration, into out. */
static int json_field(const char *json, size_t len, const char *key, char *out, size_t outsz)
{
    char pat[64];
    const char *p, *end = json + len;
    size_t n = 0;

    snprintf(pat, sizeof pat, "\"%s\"", key);
    p = memmem(json, len, pat, strlen(pat));
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (p < end && (*p == ' ' || *p == ':'))
        p++;
    if (p < end && *p == '"')
        p++;
    while (p < end && *p != '"' && *p != ',' && *p != '}' && n + 1 < outsz)
        out[n++] = *p++;
    out[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* Reads the brokers registered under <chroot>/brokers/ids at the first server of `quorum`
 * (host:port,host:port[/chroot]) that answers. Returns 0 with *out = "host:port,..."
 * (free with sh_ffi_free), or -1 with *errmsg naming the quorum and the cause. Blocks up to
 * about timeout_ms per server. Any thread. */
SH_EXPORT int sh_ffi_zk_brokers(const char *quorum, int timeout_ms, char **out, char **errmsg)
{
    char hosts[1024], chroot[256] = "", path[512], msg[1024];
    char *slash, *save = NULL, *server;
    int rc = -1;

    *out = *errmsg = NULL;
    snprintf(msg, sizeof msg, "ZooKeeper %s: no server answered", quorum);
    snprintf(hosts, sizeof hosts, "%s", quorum);
    if ((slash = strchr(hosts, '/')) != NULL) {
        snprintf(chroot, sizeof chroot, "%s", slash);
        *slash = '\0';
    }
    for (server = strtok_r(hosts, ",", &save); server && rc != 0; server = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(server, ':');
        char *reply, *data;
        size_t len, pos, dlen, dpos;
        int32_t zerr, count, i, xid = 1;
        buf_t list = { 0 };
        int fd;

        if (colon == NULL)
            continue;
        *colon = '\0';
        if ((fd = open_session(server, colon + 1, timeout_ms)) < 0)
            continue;
        snprintf(path, sizeof path, "%s/brokers/ids", chroot);
        reply = request(fd, xid++, ZK_GET_CHILDREN, path, &len, &pos, &zerr, timeout_ms);
        if (reply == NULL) {
            if (zerr == -101)  /* ZNONODE */
                snprintf(msg, sizeof msg, "ZooKeeper %s: no brokers are registered (%s does not exist)", quorum, path);
            close(fd);
            continue;
        }
        if (get_i32(reply, len, &pos, &count) || count <= 0) {
            snprintf(msg, sizeof msg, "ZooKeeper %s: no brokers are registered under %s", quorum, path);
            count = 0;
        }
        for (i = 0; i < count; i++) {
            int32_t nlen;
            char host[256], port[16], child[256];

            if (get_i32(reply, len, &pos, &nlen) || nlen < 0 || pos + (size_t) nlen > len ||
                (size_t) nlen >= sizeof child)
                break;
            memcpy(child, reply + pos, (size_t) nlen);
            child[nlen] = '\0';
            pos += (size_t) nlen;
            snprintf(path, sizeof path, "%s/brokers/ids/%s", chroot, child);
            data = request(fd, xid++, ZK_GET_DATA, path, &dlen, &dpos, &zerr, timeout_ms);
            if (data == NULL)
                continue;
            {
                int32_t blen;
                if (get_i32(data, dlen, &dpos, &blen) == 0 && blen > 0 && dpos + (size_t) blen <= dlen &&
                    json_field(data + dpos, (size_t) blen, "host", host, sizeof host) == 0 &&
                    json_field(data + dpos, (size_t) blen, "port", port, sizeof port) == 0) {
                    if (list.len)
                        put(&list, ",", 1);
                    put(&list, host, strlen(host));
                    put(&list, ":", 1);
                    put(&list, port, strlen(port));
                }
            }
            sh_free(data);
        }
        sh_free(reply);
        close(fd);
        if (list.len) {
            put(&list, "\0", 1);
            *out = list.p;
            rc = 0;
        } else {
            sh_free(list.p);
        }
    }
    if (rc != 0)
        *errmsg = sh__strdup(msg);
    return rc;
}

/* sh_in_socket.h: TCP client behind socketTextStream(host, port): connects, frames UTF-8 '\n' lines, reconnects. */
#ifndef SH_IN_SOCKET_H
#define SH_IN_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Events passed to sh_in_socket_event_cb. */
enum {
    SH_IN_SOCKET_CONNECTED = 1,      /* connected; reading has started */
    SH_IN_SOCKET_DISCONNECTED = 2,   /* the peer closed the connection or a read failed; msg says which */
    SH_IN_SOCKET_CONNECT_FAILED = 3, /* resolving or connecting failed; msg names host:port and the uv error */
    SH_IN_SOCKET_LINE_TOO_LONG = 4,  /* one over-long line is skipped (reported after the lines of the same
                                        read); msg names host:port and the limit */
    SH_IN_SOCKET_STOPPED = 5         /* the last event: the object is freed right after the callback */
};

/* The line limit used when sh_in_socket_new() is given 0, and the largest limit it accepts. */
#define SH_IN_SOCKET_DEFAULT_MAX_LINE ((size_t) 1 << 20)
#define SH_IN_SOCKET_MAX_LINE_LIMIT ((size_t) 1 << 30)

typedef struct sh_in_socket_s sh_in_socket_t;

/* Receives `count` complete records in `lines[0..len)`. Every record is valid UTF-8 (invalid
 * sequences were replaced by U+FFFD) and ends with exactly one '\n'; a '\r' just before the '\n'
 * has been removed. The bytes belong to the socket and are valid only during the call. Chunks
 * are as large as the data at hand (normally one per read), never one call per line. The
 * callback may call sh_in_socket_close(); no lines or events other than STOPPED follow. */
typedef void (*sh_in_socket_lines_cb)(void *ud, const char *lines, size_t len, size_t count);

/* Receives one SH_IN_SOCKET_* event and a NUL-terminated message valid only during the call.
 * The callback may call sh_in_socket_close(); after STOPPED the object is gone. */
typedef void (*sh_in_socket_event_cb)(void *ud, int event, const char *msg);

/* Creates a stopped client for host:port on `loop`. Nothing happens until sh_in_socket_start().
 *
 * `host` is copied. `max_line_bytes` bounds a record's raw length (as received, without its
 * '\n' or the '\r' before it); 0 means SH_IN_SOCKET_DEFAULT_MAX_LINE. `on_event` may be NULL.
 * Returns NULL and sets *err to UV_EINVAL (empty or over-long host, port outside 1..65535,
 * NULL on_lines, limit above SH_IN_SOCKET_MAX_LINE_LIMIT), UV_ENOMEM, or a uv error. The caller
 * owns the object until sh_in_socket_close(). Loop thread only, as is every function here. */
sh_in_socket_t *sh_in_socket_new(uv_loop_t *loop, const char *host, int port, size_t max_line_bytes,
                                 sh_in_socket_lines_cb on_lines, sh_in_socket_event_cb on_event,
                                 void *ud, int *err);

/* Sets the reconnect delays: the first retry waits min_ms, each further failure doubles the
 * wait up to max_ms, and a successful connect resets it to min_ms. The default is 100..2000 ms.
 * A max_ms below min_ms is raised to min_ms. Takes effect from the next retry. */
void sh_in_socket_set_backoff(sh_in_socket_t *s, uint64_t min_ms, uint64_t max_ms);

/* Starts resolving (uv_getaddrinfo) and connecting on the next loop iteration; every event
 * arrives from the loop, never from inside this call. Failures are reported as events and
 * retried forever with the backoff. Returns 0, or UV_EALREADY when already started or closing. */
int sh_in_socket_start(sh_in_socket_t *s);

/* Backpressure: pause stops reading from the connection (the peer's writes then block in
 * TCP's own flow control) until resume; both are idempotent, and a pause lasts across
 * reconnects. Data already read is still delivered. */
void sh_in_socket_pause(sh_in_socket_t *s);
void sh_in_socket_resume(sh_in_socket_t *s);

/* Stops reading, cancels the timer and pending requests and closes the handles. Once every
 * close callback has run, calls on_event(SH_IN_SOCKET_STOPPED) and frees the object, so the
 * loop must run after this call. Safe in any state and from inside the callbacks; call it once
 * (later calls before STOPPED are ignored). NULL is ignored. */
void sh_in_socket_close(sh_in_socket_t *s);

#endif

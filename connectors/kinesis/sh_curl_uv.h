/* sh_curl_uv.h: HTTP requests on a libuv loop: libcurl's multi interface driven by uv_poll
 * (its sockets) and a uv_timer (its timeouts), never blocking the loop. */
#ifndef SH_CURL_UV_H
#define SH_CURL_UV_H

#include <stddef.h>
#include <uv.h>

struct curl_slist;
typedef struct sh_curl_uv_s sh_curl_uv_t;

/* A request's end: curl_code 0 and the HTTP status with the body received (borrowed: valid
 * during the call), or a libcurl error (curl_code > 0, status 0) described by `error`, or
 * SH_CURL_CANCELLED when the client closes first (then the callback may only let go of ud). */
#define SH_CURL_CANCELLED (-1)
typedef void (*sh_curl_done_cb)(void *ud, int curl_code, long status, const char *body,
                                size_t len, const char *error);

/* A client on `loop`. NULL when libcurl cannot start one. The caller owns it until
 * sh_curl_uv_close(). Loop thread, every function here. */
sh_curl_uv_t *sh_curl_uv_new(uv_loop_t *loop);

/* Starts a POST of body[0..len) to url with `headers` (the list and the body are taken, also
 * on failure), at most timeout_ms in all; done(ud, ...) is called once from the loop when it
 * ends, never from inside this call. Answers over max_bytes fail (curl_code set). 0, or -1
 * (out of memory; done is not called). */
int sh_curl_uv_post(sh_curl_uv_t *c, const char *url, struct curl_slist *headers, char *body,
                    size_t len, long timeout_ms, size_t max_bytes, sh_curl_done_cb done,
                    void *ud);

/* Requests in flight. */
int sh_curl_uv_active(const sh_curl_uv_t *c);

/* Cancels every request in flight (their callbacks get SH_CURL_CANCELLED, from inside this
 * call) and frees the client once
 * its handles have closed (the loop must turn). The caller must not use `c` again. */
void sh_curl_uv_close(sh_curl_uv_t *c);

#endif

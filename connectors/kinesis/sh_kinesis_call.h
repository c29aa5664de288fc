/* sh_kinesis_call.h: one call of the Kinesis JSON 1.1 API (Kinesis_20131202.<Op>), signed with
 * SigV4, over sh_curl_uv; its answer parsed and classified. */
#ifndef SH_KINESIS_CALL_H
#define SH_KINESIS_CALL_H

#include "sh_curl_uv.h"

#include <jansson.h>

/* Where calls go and who makes them. Strings owned by the endpoint (sh_kinesis_ep_free). */
typedef struct sh_kinesis_ep_s {
    char *url;          /* http(s)://host[:port][/path] */
    char *host;         /* the Host header: host, or host:port */
    char *path;         /* "/" or the URL's path */
    char *region;
    char *access_key, *secret_key, *session_token;  /* token NULL when none */
} sh_kinesis_ep_t;

/* An endpoint for url and region with the credentials given, or (access_key NULL or "") those
 * of the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. NULL with
 * *errmsg (free with sh_free) for a URL that is not http(s)://host..., or no credentials.
 * Any thread. */
sh_kinesis_ep_t *sh_kinesis_ep_new(const char *url, const char *region, const char *access_key,
                                   const char *secret_key, char **errmsg);
/* Frees the endpoint and its strings (the secret wiped first). Calls read the endpoint only
 * while sh_kinesis_call runs: it may go with calls still in flight. NULL is ignored. The
 * owner's thread. */
void sh_kinesis_ep_free(sh_kinesis_ep_t *ep);

/* How a call ended. */
enum {
    SH_KC_OK = 0,        /* json: the answer's object */
    SH_KC_THROTTLED,     /* ProvisionedThroughputExceeded, LimitExceeded, Throttling: retry later */
    SH_KC_EXPIRED,       /* ExpiredIteratorException: get a new iterator */
    SH_KC_RETRY,         /* transport error, HTTP 5xx, a malformed answer: retry later */
    SH_KC_FAILED         /* another error of the service (unknown stream, bad request, ...) */
};

typedef struct sh_kinesis_answer_s {
    int kind;            /* SH_KC_* */
    json_t *json;        /* SH_KC_OK: the answer (borrowed, valid during the callback) */
    const char *type;    /* the error's __type ("ResourceNotFoundException"), else NULL */
    const char *message; /* a line saying what went wrong (never NULL unless SH_KC_OK) */
} sh_kinesis_answer_t;

typedef void (*sh_kinesis_cb)(void *ud, const sh_kinesis_answer_t *a);

/* Calls operation `op` with the JSON body (copied); cb(ud, answer) once from the loop, unless
 * the client closes first (then never). 0, or -1 (out of memory, or a signature that could
 * not be made: cb is not called). ep is read only during this call. ud is not owned: it must
 * stay valid until cb has run or the client has been closed (sh_curl_uv_close), whichever
 * comes first. Loop thread. */
int sh_kinesis_call(sh_curl_uv_t *c, const sh_kinesis_ep_t *ep, const char *op,
                    const char *body, long timeout_ms, sh_kinesis_cb cb, void *ud);

#endif

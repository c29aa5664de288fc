/* sh_kinesis_call.c: Kinesis API calls: the endpoint and credentials, the signed request
 * (X-Amz-Target, application/x-amz-json-1.1, SigV4 by sh_sigv4.c) and the answer read with
 * jansson (a well-kept Debian library: a strict parser that reports malformed input with a
 * position, so a bad answer is an error message, never a crash) and sorted into retry,
 * throttled, expired iterator or failure. */
#include "sh_kinesis_call.h"
#include "sh_buf.h"
#include "sh_common.h"
#include "sh_sigv4.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#define MAX_ANSWER (64u << 20)  /* GetRecords answers are at most 10 MB of data, in base64 */

typedef struct call_s {
    sh_kinesis_cb cb;
    void *ud;
    char op[48];
} call_t;

static char *env_or_null(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? sh__strdup(v) : NULL;
}

void sh_kinesis_ep_free(sh_kinesis_ep_t *ep)
{
    if (ep == NULL)
        return;
    sh_free(ep->url);
    sh_free(ep->host);
    sh_free(ep->path);
    sh_free(ep->region);
    sh_free(ep->access_key);
    if (ep->secret_key)
        OPENSSL_cleanse(ep->secret_key, strlen(ep->secret_key));
    sh_free(ep->secret_key);
    sh_free(ep->session_token);
    sh_free(ep);
}

sh_kinesis_ep_t *sh_kinesis_ep_new(const char *url, const char *region, const char *access_key,
                                   const char *secret_key, char **errmsg)
{
    sh_kinesis_ep_t *ep = sh_calloc(1, sizeof *ep);
    const char *rest, *slash, *colon;
    int https;
    char buf[512];

    *errmsg = NULL;
    if (ep == NULL)
        goto nomem;
    https = strncmp(url, "https://", 8) == 0;
    if (!https && strncmp(url, "http://", 7) != 0) {
        snprintf(buf, sizeof buf, "endpoint %s is not an http:// or https:// URL", url);
        goto fail;
    }
    rest = url + (https ? 8 : 7);
    slash = strchr(rest, '/');
    if (slash == NULL)
        slash = rest + strlen(rest);
    if (slash == rest) {
        snprintf(buf, sizeof buf, "endpoint %s names no host", url);
        goto fail;
    }
    /* The Host header leaves out the scheme's default port, as AWS's own clients do. */
    colon = memchr(rest, ':', (size_t) (slash - rest));
    if (colon && strncmp(colon, https ? ":443" : ":80", (size_t) (slash - colon)) == 0 &&
        (size_t) (slash - colon) == (https ? 4u : 3u))
        ep->host = sh__strndup(rest, (size_t) (colon - rest));
    else
        ep->host = sh__strndup(rest, (size_t) (slash - rest));
    ep->path = sh__strdup(*slash ? slash : "/");
    ep->url = sh__strdup(url);
    ep->region = sh__strdup(region);
    if (access_key && *access_key) {
        ep->access_key = sh__strdup(access_key);
        ep->secret_key = sh__strdup(secret_key ? secret_key : "");
        if (ep->access_key == NULL || ep->secret_key == NULL)
            goto nomem;
    } else {
        ep->access_key = env_or_null("AWS_ACCESS_KEY_ID");
        ep->secret_key = env_or_null("AWS_SECRET_ACCESS_KEY");
        ep->session_token = env_or_null("AWS_SESSION_TOKEN");
        if (ep->access_key == NULL || ep->secret_key == NULL) {
            snprintf(buf, sizeof buf, "no AWS credentials: pass awsAccessKeyId and awsSecretKey, "
                     "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
            goto fail;
        }
    }
    if (ep->host == NULL || ep->path == NULL || ep->url == NULL || ep->region == NULL)
        goto nomem;
    return ep;
nomem:
    snprintf(buf, sizeof buf, "out of memory");
fail:
    *errmsg = sh__strdup(buf);
    sh_kinesis_ep_free(ep);
    return NULL;
}

/* The error's type: "__type" of the answer without a "prefix#", or NULL. */
static const char *error_type(json_t *j)
{
    const char *t = json_string_value(json_object_get(j, "__type"));
    const char *hash;

    if (t == NULL)
        return NULL;
    hash = strrchr(t, '#');
    return hash ? hash + 1 : t;
}

static void on_done(void *ud, int curl_code, long status, const char *body, size_t len,
                    const char *error)
{
    call_t *call = ud;
    sh_kinesis_answer_t a = { 0 };
    json_t *j = NULL;
    json_error_t jerr;
    char msg[700];

    a.message = msg;
    if (curl_code == SH_CURL_CANCELLED) {  /* the client is closing: nobody waits for it */
        sh_free(call);
        return;
    }
    if (curl_code != 0) {
        snprintf(msg, sizeof msg, "%s: %s", call->op, error);
        a.kind = SH_KC_RETRY;
        goto out;
    }
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        snprintf(msg, sizeof msg, "%s: HTTP %ld with a malformed answer (%s, at byte %d): %.120s",
                 call->op, status, j ? "not a JSON object" : jerr.text, j ? 0 : jerr.position,
                 len ? body : "(empty)");
        a.kind = SH_KC_RETRY;
        goto out;
    }
    if (status == 200) {
        a.kind = SH_KC_OK;
        a.json = j;
        a.message = NULL;
        goto out;
    }
    a.type = error_type(j);
    {
        const char *m = json_string_value(json_object_get(j, "message"));

        if (m == NULL)
            m = json_string_value(json_object_get(j, "Message"));
        snprintf(msg, sizeof msg, "%s: HTTP %ld %s%s%s", call->op, status,
                 a.type ? a.type : "error", m ? ": " : "", m ? m : "");
    }
    if (status >= 500)
        a.kind = SH_KC_RETRY;
    else if (a.type && (strcmp(a.type, "ProvisionedThroughputExceededException") == 0 ||
                        strcmp(a.type, "LimitExceededException") == 0 ||
                        strcmp(a.type, "ThrottlingException") == 0))
        a.kind = SH_KC_THROTTLED;
    else if (a.type && strcmp(a.type, "ExpiredIteratorException") == 0)
        a.kind = SH_KC_EXPIRED;
    else
        a.kind = SH_KC_FAILED;
out:
    call->cb(call->ud, &a);
    json_decref(j);
    sh_free(call);
}

/* Appends the header "name: value" (any length: a session token has no fixed size). */
static struct curl_slist *add_header(struct curl_slist *l, int *oom, const char *name,
                                     const char *value)
{
    sh_buf_t b;
    struct curl_slist *n = NULL;

    sh_buf_init(&b);
    sh_buf_printf(&b, "%s:%s%s", name, *value ? " " : "", value);
    if (!b.oom)
        n = curl_slist_append(l, b.data);
    sh_buf_close(&b);
    if (n == NULL)
        *oom = 1;
    return n ? n : l;
}

int sh_kinesis_call(sh_curl_uv_t *c, const sh_kinesis_ep_t *ep, const char *op,
                    const char *body, long timeout_ms, sh_kinesis_cb cb, void *ud)
{
    char target[96], date[17], *auth;
    /* The Authorization header: fixed words, the signed header names and the signature, with
     * the access key and the region. */
    size_t auth_cap = 512 + strlen(ep->access_key) + strlen(ep->region);
    const char *names[2] = { "Content-Type", "X-Amz-Target" };
    const char *vals[2] = { "application/x-amz-json-1.1", target };
    struct curl_slist *h = NULL;
    size_t len = strlen(body);
    char *copy;
    call_t *call;
    int oom = 0;

    snprintf(target, sizeof target, "Kinesis_20131202.%s", op);
    sh__sigv4_date(sh__now_ms() / 1000, date);
    auth = sh_malloc(auth_cap);
    if (auth == NULL)
        return -1;
    if (sh_ffi_sigv4_authorization("POST", ep->host, ep->path, NULL, names, vals, 2, body, len,
                                   ep->region, "kinesis", date, ep->access_key, ep->secret_key,
                                   ep->session_token, auth, auth_cap) < 0) {
        sh_free(auth);
        return -1;
    }
    call = sh_calloc(1, sizeof *call);
    copy = sh__strndup(body, len);
    if (call == NULL || copy == NULL) {
        sh_free(auth);
        sh_free(call);
        sh_free(copy);
        return -1;
    }
    call->cb = cb;
    call->ud = ud;
    snprintf(call->op, sizeof call->op, "%s", op);
    h = add_header(h, &oom, "Host", ep->host);
    h = add_header(h, &oom, "Content-Type", vals[0]);
    h = add_header(h, &oom, "X-Amz-Target", target);
    h = add_header(h, &oom, "X-Amz-Date", date);
    h = add_header(h, &oom, "Authorization", auth);
    if (ep->session_token)
        h = add_header(h, &oom, "X-Amz-Security-Token", ep->session_token);
    h = add_header(h, &oom, "Expect", "");  /* no 100-continue round trip */
    sh_free(auth);
    if (oom) {
        curl_slist_free_all(h);
        sh_free(copy);
        sh_free(call);
        return -1;
    }
    if (sh_curl_uv_post(c, ep->url, h, copy, len, timeout_ms, MAX_ANSWER, on_done, call)) {
        sh_free(call);
        return -1;
    }
    return 0;
}

/* sh_sigv4.c: AWS Signature Version 4: the canonical request, the string to sign and the
 * signature of one request, with OpenSSL's SHA-256 and HMAC. Nothing else: no I/O, no state. */
#include "sh_sigv4.h"
#include "sh_buf.h"
#include "sh_common.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SH_EXPORT __attribute__((visibility("default")))

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256(data, len, md);
    hex(md, sizeof md, out);
}

static void hmac(const unsigned char *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;

    HMAC(EVP_sha256(), key, (int) klen, (const unsigned char *) msg, strlen(msg), out, &n);
}

/* The path as AWS canonicalizes it: every byte but unreserved ones and '/' percent-encoded. */
static void add_path(sh_buf_t *b, const char *path)
{
    const unsigned char *p = (const unsigned char *) (path && *path ? path : "/");

    for (; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/')
            sh_buf_add(b, (const char *) p, 1);
        else
            sh_buf_printf(b, "%%%02X", *p);
    }
}

typedef struct {
    const char *s;
    size_t len;
} span_t;

/* Query pairs sort by key then value, byte-wise: "k=v" compared as (k, v). */
static int cmp_pair(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    const char *xe = memchr(x->s, '=', x->len), *ye = memchr(y->s, '=', y->len);
    size_t xk = xe ? (size_t) (xe - x->s) : x->len, yk = ye ? (size_t) (ye - y->s) : y->len;
    size_t xv = x->len - xk - (xe != NULL), yv = y->len - yk - (ye != NULL);
    int c = memcmp(x->s, y->s, xk < yk ? xk : yk);

    if (c || xk != yk)
        return c ? c : (xk < yk ? -1 : 1);
    c = memcmp(x->s + xk + (xe != NULL), y->s + yk + (ye != NULL), xv < yv ? xv : yv);
    return c ? c : (xv < yv ? -1 : xv > yv);
}

/* The canonical query string: the pairs of an encoded query, sorted, "k=v" (a pair with no
 * '=' gets one), joined by '&'. 0 or -1 (out of memory). */
static int add_query(sh_buf_t *b, const char *query)
{
    span_t *pairs;
    size_t n = 1, i = 0;
    const char *p;

    if (query == NULL || *query == '\0')
        return 0;
    for (p = query; *p; p++)
        n += *p == '&';
    pairs = sh_calloc(n, sizeof *pairs);
    if (pairs == NULL)
        return -1;
    for (p = query;; i++) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t) (amp - p) : strlen(p);

        pairs[i].s = p;
        pairs[i].len = len;
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    n = i + 1;
    qsort(pairs, n, sizeof *pairs, cmp_pair);
    for (i = 0; i < n; i++) {
        if (i)
            sh_buf_add(b, "&", 1);
        sh_buf_add(b, pairs[i].s, pairs[i].len);
        if (memchr(pairs[i].s, '=', pairs[i].len) == NULL)
            sh_buf_add(b, "=", 1);
    }
    sh_free(pairs);
    return 0;
}

typedef struct {
    char *name;         /* lower case */
    const char *value;
} header_t;

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const header_t *) a)->name, ((const header_t *) b)->name);
}

/* A header value trimmed: no leading or trailing white space, inner runs as one space. */
static void add_trimmed(sh_buf_t *b, const char *v)
{
    int space = 0, any = 0;

    for (; *v; v++) {
        if (isspace((unsigned char) *v)) {
            space = any;
        } else {
            if (space)
                sh_buf_add(b, " ", 1);
            sh_buf_add(b, v, 1);
            space = 0;
            any = 1;
        }
    }
}

SH_EXPORT int sh_ffi_sigv4_authorization(const char *method, const char *host, const char *path,
                                         const char *query, const char **hnames,
                                         const char **hvals, int nh, const char *body,
                                         size_t body_len, const char *region,
                                         const char *service, const char *amz_date,
                                         const char *access_key, const char *secret_key,
                                         const char *session_token, char *out, size_t cap)
{
    sh_buf_t canon, names, sts, key;
    header_t *hs;
    int n = 0, i, j, rc = -1;
    char body_hash[65], canon_hash[65], date[9], sig_hex[65];
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];

    if (nh < 0 || strlen(amz_date) < 8)
        return -1;
    hs = sh_calloc((size_t) nh + 3, sizeof *hs);
    if (hs == NULL)
        return -1;
    sh_buf_init(&canon);
    sh_buf_init(&names);
    sh_buf_init(&sts);
    sh_buf_init(&key);
    /* host, x-amz-date and the token go first; a caller's header of the same name is left
     * out (these are what the request sends). */
    /* Each name is checked as it is made: the loop below compares them. */
    if ((hs[n].name = sh__strdup("host")) == NULL)
        goto done;
    hs[n++].value = host;
    if ((hs[n].name = sh__strdup("x-amz-date")) == NULL)
        goto done;
    hs[n++].value = amz_date;
    if (session_token && *session_token) {
        if ((hs[n].name = sh__strdup("x-amz-security-token")) == NULL)
            goto done;
        hs[n++].value = session_token;
    }
    for (i = 0; i < nh; i++) {
        char *lower = sh__strdup(hnames[i]);
        int dup = 0;

        if (lower == NULL)
            goto done;
        for (j = 0; lower[j]; j++)
            lower[j] = (char) tolower((unsigned char) lower[j]);
        for (j = 0; j < n; j++)
            dup |= strcmp(hs[j].name, lower) == 0;
        if (dup) {
            sh_free(lower);
            continue;
        }
        hs[n].name = lower;
        hs[n++].value = hvals[i];
    }
    qsort(hs, (size_t) n, sizeof *hs, cmp_header);

    /* The canonical request. */
    sh_buf_printf(&canon, "%s\n", method);
    add_path(&canon, path);
    sh_buf_add(&canon, "\n", 1);
    if (add_query(&canon, query))
        goto done;
    sh_buf_add(&canon, "\n", 1);
    for (j = 0; j < n; j++) {
        sh_buf_printf(&canon, "%s:", hs[j].name);
        add_trimmed(&canon, hs[j].value ? hs[j].value : "");
        sh_buf_add(&canon, "\n", 1);
        sh_buf_printf(&names, "%s%s", j ? ";" : "", hs[j].name);
    }
    sha256_hex(body ? body : "", body ? body_len : 0, body_hash);
    sh_buf_printf(&canon, "\n%s\n%s", names.data ? names.data : "", body_hash);
    if (canon.oom || names.oom)
        goto done;
    sha256_hex(canon.data, canon.len, canon_hash);

    /* The string to sign and the key derived for the day, region and service. */
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    sh_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, date, region,
                  service, canon_hash);
    sh_buf_printf(&key, "AWS4%s", secret_key);
    if (sts.oom || key.oom)
        goto done;
    hmac((const unsigned char *) key.data, key.len, date, k1);
    hmac(k1, 32, region, k2);
    hmac(k2, 32, service, k3);
    hmac(k3, 32, "aws4_request", k4);
    hmac(k4, 32, sts.data, sig);
    hex(sig, 32, sig_hex);
    rc = snprintf(out, cap, "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                  "SignedHeaders=%s, Signature=%s", access_key, date, region, service, names.data,
                  sig_hex);
    if (rc < 0 || (size_t) rc >= cap)
        rc = -1;
done:
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(k3, sizeof k3);
    OPENSSL_cleanse(k4, sizeof k4);
    for (j = 0; j < n; j++)
        sh_free(hs[j].name);
    sh_free(hs);
    if (key.data)
        OPENSSL_cleanse(key.data, key.len);
    sh_buf_close(&canon);
    sh_buf_close(&names);
    sh_buf_close(&sts);
    sh_buf_close(&key);
    return rc;
}

void sh__sigv4_date(long long t, char out[17])
{
    time_t tt = (time_t) t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

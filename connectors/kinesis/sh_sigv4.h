/* sh_sigv4.h: AWS Signature Version 4 for one HTTP request (the Authorization header). */
#ifndef SH_SIGV4_H
#define SH_SIGV4_H

#include <stddef.h>

/* Writes the Authorization header's value for a request into out (NUL-terminated, at most
 * cap bytes) and returns its length, or -1 when out is too small or memory runs out.
 *
 * method: "POST"; host: the Host header as sent (host, or host:port for a port that is not the
 * scheme's default); path: the URL path ("" is "/"), encoded by the signer as AWS asks;
 * query: the URL's query string, already URI-encoded, or NULL; headers: nh more headers the
 * request sends and signs (names in any case, values as sent: the signer trims them);
 * amz_date: the X-Amz-Date header, YYYYMMDDTHHMMSSZ; session_token: NULL or "" when none,
 * else it is signed as the X-Amz-Security-Token header (which the caller must send).
 * host and X-Amz-Date are always signed. Pure: any thread; nothing is kept. */
int sh_ffi_sigv4_authorization(const char *method, const char *host, const char *path,
                               const char *query, const char **hnames, const char **hvals,
                               int nh, const char *body, size_t body_len, const char *region,
                               const char *service, const char *amz_date,
                               const char *access_key, const char *secret_key,
                               const char *session_token, char *out, size_t cap);

/* X-Amz-Date for epoch seconds `t` (UTC) into out[17]. Any thread. */
void sh__sigv4_date(long long t, char out[17]);

#endif

/* sh_api.h: the status model as JSON: /api/v1/..., shaped after Spark's REST API for
 * streaming (applications, streaming/statistics, receivers, batches, operations). */
#ifndef SH_API_H
#define SH_API_H

#include "sh_buf.h"
#include "sh_status.h"

/* Renders the JSON answer for `path` (starting with "/api/v1") and `query` into `out`, taking
 * the model's lock for the call. Returns the HTTP status: 200, or 404 with a JSON error object
 * naming what was not found. Any thread. */
int sh_api_render(sh_status_t *s, const char *path, const char *query, sh_buf_t *out);

/* Appends t (epoch seconds) in Spark's REST date form, "2026-12-02T07:55:35.123GMT", as a JSON
 * string; null when t is 0. */
void sh_api_date(sh_buf_t *out, double t);

#endif

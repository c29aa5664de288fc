/* sh_metrics.h: the status model in Prometheus text exposition format 0.0.4 (/metrics). */
#ifndef SH_METRICS_H
#define SH_METRICS_H

#include "sh_buf.h"
#include "sh_status.h"

#define SH_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Renders every metric into `out`, taking the model's lock for the call. Any thread. */
void sh_metrics_render(sh_status_t *s, sh_buf_t *out);

#endif

/* sh_ui.h: the status server: the status page and its assets, /api/v1 and /metrics, served
 * from the status model on the HTTP server's own thread. */
#ifndef SH_UI_H
#define SH_UI_H

#include "sh_status.h"

typedef struct sh_ui_s sh_ui_t;

/* Reads the page's assets (index.html, streaming.js, streaming.css from ui_dir; the dygraphs
 * library from ui_dir/vendor/ or Debian's libjs-dygraphs) and starts serving on addr:port.
 * Returns NULL with *errmsg (free with sh_free) naming the file or address and the cause.
 * `s` must outlive the server; the caller owns the server until sh_ui_stop(). Any thread. */
sh_ui_t *sh_ui_start(sh_status_t *s, const char *addr, int port, const char *ui_dir,
                     char **errmsg);
int sh_ui_port(const sh_ui_t *ui);
/* Stops serving (joins the server's thread) and frees the server. NULL is ignored. */
void sh_ui_stop(sh_ui_t *ui);

#endif

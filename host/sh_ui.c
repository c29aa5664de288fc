/* sh_ui.c: the status server's routes: the page and its static assets (read once at start,
 * never from the network), /metrics and /api/v1, over sh_http. */
#include "sh_ui.h"
#include "sh_api.h"
#include "sh_common.h"
#include "sh_http.h"
#include "sh_metrics.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DEBIAN_DYGRAPHS "/usr/share/javascript/dygraphs"
#define PAGE_HEADERS "Content-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'; " \
                     "img-src 'self' data:\r\n"

typedef struct {
    const char *route;      /* the path the page asks for */
    const char *file;       /* under ui_dir */
    const char *fallback;   /* an absolute path when ui_dir has none (the Debian package) */
    const char *type;
    char *data;
    size_t len;
} asset_t;

struct sh_ui_s {
    sh_status_t *status;
    sh_http_t *http;
    asset_t assets[6];
};

static const asset_t ASSETS[6] = {
    { "/", "index.html", NULL, "text/html; charset=utf-8", NULL, 0 },
    { "/static/streaming.js", "streaming.js", NULL, "text/javascript; charset=utf-8", NULL, 0 },
    { "/static/streaming.css", "streaming.css", NULL, "text/css; charset=utf-8", NULL, 0 },
    { "/static/dygraph.min.js", "vendor/dygraph.min.js", DEBIAN_DYGRAPHS "/dygraph.min.js",
      "text/javascript; charset=utf-8", NULL, 0 },
    { "/static/dygraph.min.css", "vendor/dygraph.min.css", DEBIAN_DYGRAPHS "/dygraph.min.css",
      "text/css; charset=utf-8", NULL, 0 },
    { "/favicon.ico", NULL, NULL, "image/x-icon", NULL, 0 },
};

/* Reads a whole file; 0, or -1 with *err naming the file and errno's reason. */
static int read_file(const char *path, char **data, size_t *len, char **err)
{
    FILE *f = fopen(path, "rb");
    char msg[1200];
    long n;

    if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (*data = sh_malloc((size_t) n + 1)) != NULL) {
        if (fread(*data, 1, (size_t) n, f) == (size_t) n) {
            fclose(f);
            *len = (size_t) n;
            return 0;
        }
        sh_free(*data);
        *data = NULL;
    }
    snprintf(msg, sizeof msg, "status page: cannot read %s: %s", path, strerror(errno ? errno : EIO));
    *err = sh__strdup(msg);
    if (f != NULL)
        fclose(f);
    return -1;
}

static int load_assets(sh_ui_t *ui, const char *ui_dir, char **err)
{
    char path[1024];
    int i;

    memcpy(ui->assets, ASSETS, sizeof ASSETS);
    for (i = 0; i < 6; i++) {
        asset_t *a = &ui->assets[i];
        if (a->file == NULL)
            continue;
        snprintf(path, sizeof path, "%s/%s", ui_dir, a->file);
        if (a->fallback != NULL && access(path, R_OK) != 0) {
            if (read_file(a->fallback, &a->data, &a->len, err) == 0)
                continue;
            sh_free(*err);
            snprintf(path, sizeof path, "status page: the plot library is missing: neither %s/%s "
                     "nor %s is readable (Debian's libjs-dygraphs installs it; scripts/setup does)",
                     ui_dir, a->file, a->fallback);
            *err = sh__strdup(path);
            return -1;
        }
        if (read_file(path, &a->data, &a->len, err) != 0)
            return -1;
    }
    return 0;
}

static void free_assets(sh_ui_t *ui)
{
    int i;

    for (i = 0; i < 6; i++)
        sh_free(ui->assets[i].data);
}

static void json_reply(sh_http_reply_t *r, int status, sh_buf_t *b)
{
    r->status = status;
    r->type = "application/json; charset=utf-8";
    r->body = sh_buf_take(b, &r->len);
    if (r->body == NULL)
        r->status = 503;
}

static void handle(void *ud, const sh_http_request_t *req, sh_http_reply_t *r)
{
    sh_ui_t *ui = ud;
    sh_buf_t b;
    int i;

    sh_buf_init(&b);
    if (strcmp(req->path, "/metrics") == 0) {
        sh_metrics_render(ui->status, &b);
        r->status = 200;
        r->type = SH_METRICS_CONTENT_TYPE;
        r->body = sh_buf_take(&b, &r->len);
        if (r->body == NULL)
            r->status = 503;
        return;
    }
    if (strncmp(req->path, "/api/v1", 7) == 0 && (req->path[7] == '\0' || req->path[7] == '/')) {
        i = sh_api_render(ui->status, req->path, req->query, &b);
        json_reply(r, i, &b);
        return;
    }
    for (i = 0; i < 6; i++) {
        const asset_t *a = &ui->assets[i];
        if (strcmp(req->path, a->route) == 0 ||
            (i == 0 && (strcmp(req->path, "/streaming") == 0 || strcmp(req->path, "/streaming/") == 0))) {
            r->status = a->file ? 200 : 204;
            r->type = a->type;
            r->body = a->data;
            r->len = a->len;
            r->borrowed = 1;
            r->headers = i == 0 ? PAGE_HEADERS : NULL;
            return;
        }
    }
    r->status = 404;
    sh_buf_printf(&b, "404 Not Found: no page at this path; try / (the status page), /metrics "
                      "or /api/v1/applications\n");
    r->body = sh_buf_take(&b, &r->len);
}

sh_ui_t *sh_ui_start(sh_status_t *s, const char *addr, int port, const char *ui_dir,
                     char **errmsg)
{
    sh_ui_t *ui = sh_calloc(1, sizeof(*ui));

    *errmsg = NULL;
    if (ui == NULL) {
        *errmsg = sh__strdup("status page: out of memory");
        return NULL;
    }
    ui->status = s;
    if (load_assets(ui, ui_dir, errmsg) != 0)
        goto fail;
    ui->http = sh_http_start(addr, port, NULL, handle, ui, errmsg);
    if (ui->http == NULL)
        goto fail;
    return ui;

fail:
    free_assets(ui);
    sh_free(ui);
    return NULL;
}

int sh_ui_port(const sh_ui_t *ui)
{
    return sh_http_port(ui->http);
}

void sh_ui_stop(sh_ui_t *ui)
{
    if (ui == NULL)
        return;
    sh_http_stop(ui->http);
    free_assets(ui);
    sh_free(ui);
}

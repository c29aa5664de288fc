/* sh_main.c: the `streamhost` executable, a thin main over host/streamhost.h: options, signals,
 * and the reload triggers (SIGHUP, --watch) on a loop the executable owns and the host attaches
 * to. */
#include "streamhost.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libgen.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static sh_host_t *host;
static volatile sig_atomic_t got_signal;  /* a stop signal came (then first_signal_ms is set) */
static volatile long first_signal_ms;     /* monotonic ms of the first; written by the handler only */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: streamhost [--master local[N]] [--ui [ADDR:]PORT] JOB.lua [ARGS...]\n"
            "\n"
            "Runs a streaming job written against the pyspark.streaming API in Lua.\n"
            "ARGS reach the script as the table `arg` (arg[1], arg[2], ...).\n"
            "\n"
            "  --master M   local, local[N] (N worker threads) or local[*] (one per core);\n"
            "               used when the script's SparkContext names no master\n"
            "  --ui [ADDR:]PORT  serve the status page, /metrics and /api/v1 on ADDR:PORT\n"
            "               (ADDR defaults to 127.0.0.1; PORT 0 picks a free one; a bare --ui\n"
            "               before the script means 127.0.0.1:4040)\n"
            "  --watch      reload the job when its script file changes (a write, or a rename\n"
            "               over it); SIGHUP reloads it on demand\n"
            "  --reload-drop-state  let a reload drop state that the new script does not take\n"
            "               over (refused otherwise)\n"
            "  --recover-new-script  getOrCreate with a script that differs from the\n"
            "               checkpoint's: recover the checkpointed job, then hot-reload the\n"
            "               script into it (state taken over by name and position)\n"
            "  --help       this text\n"
            "  --version    the version\n"
            "\n"
            "Ctrl-C (or SIGTERM) stops the job gracefully; another one more than a second later\n"
            "ends the process at once.\n"
            "Environment: STREAMHOST_LUA_DIR overrides where the streamhost Lua modules are.\n");
}

static long monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);  /* async-signal-safe */
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first SIGINT/SIGTERM asks for a graceful stop. One delivered twice in quick succession
 * (GNU timeout forwards it so, a terminal may too) is the same request; a second one more than
 * a second later is a user who wants out now. */
static void on_signal(int sig)
{
    static const char msg[] = "streamhost: second signal: exiting without finishing the job\n";
    long now = monotonic_ms();

    if (!got_signal) {
        first_signal_ms = now;
        got_signal = 1;
        if (host != NULL)
            sh_host_stop(host);
        return;
    }
    if (now - first_signal_ms > 1000) {
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void) ignored;
        _exit(128 + sig);
    }
}

/* Parses [ADDR:]PORT (ADDR an IPv4 literal or a bracketed IPv6 one). 0, or -1 when it is
 * not of that form. */
static int parse_ui(const char *spec, char *addr, size_t addrlen, int *port)
{
    const char *colon = strrchr(spec, ':'), *p;
    char *end;
    long n;

    snprintf(addr, addrlen, "127.0.0.1");
    p = spec;
    if (colon != NULL) {
        size_t len = (size_t) (colon - spec);
        if (spec[0] == '[' && len >= 2 && spec[len - 1] == ']') {
            spec++;
            len -= 2;
        }
        if (len == 0 || len >= addrlen)
            return -1;
        memcpy(addr, spec, len);
        addr[len] = '\0';
        p = colon + 1;
    }
    if (*p < '0' || *p > '9')
        return -1;
    n = strtol(p, &end, 10);
    if (*end != '\0' || n < 0 || n > 65535)
        return -1;
    *port = (int) n;
    return 0;
}

/* -- Reload triggers ------------------------------------------------------------------- */

typedef struct {
    uv_signal_t hup;
    uv_fs_event_t watch;
    uv_timer_t settle;     /* a change is reloaded once the file has been quiet for a moment */
    const char *script;
    char *base;            /* the script's file name, in its directory's events */
    char *last;            /* the text last reloaded (or loaded): a change that did not change it
                            * is no reload */
    size_t last_len;
    int flags;
    int watching;
} reloader_t;

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n;

    *len = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (*len == cap) {
            char *p = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (p == NULL)
                break;
            buf = p;
        }
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    return buf;
}

static void on_settled(uv_timer_t *t);

static void do_reload(reloader_t *r, int forced)
{
    size_t len;
    char *text = slurp(r->script, &len);

    if (text == NULL) {
        fprintf(stderr, "streamhost: reload: cannot read %s\n", r->script);
        return;
    }
    if (!forced && r->last != NULL && len == r->last_len && memcmp(text, r->last, len) == 0) {
        free(text);
        return;
    }
    /* The outcome is on stderr already (the host reports every reload). One that found another
     * still under way is tried again shortly, so the last change is not missed. */
    if (sh_host_reload_ex(host, r->script, r->flags) != 0
        && strstr(sh_host_last_error(host), "already under way") != NULL) {
        free(text);
        uv_timer_start(&r->settle, on_settled, 200, 0);
        return;
    }
    free(r->last);
    r->last = text;
    r->last_len = len;
}

static void on_hup(uv_signal_t *s, int sig)
{
    (void) sig;
    do_reload(s->data, 1);
}

static void on_settled(uv_timer_t *t)
{
    do_reload(t->data, 0);
}

static void on_change(uv_fs_event_t *e, const char *filename, int events, int status)
{
    reloader_t *r = e->data;

    (void) events;
    if (status == 0 && (filename == NULL || strcmp(filename, r->base) == 0))
        uv_timer_start(&r->settle, on_settled, 100, 0);
}

/* SIGHUP always; the directory watch with --watch (the directory: a rename over the file
 * replaces what a watch on the file itself would follow). 0 or a libuv error. */
static int reloader_start(reloader_t *r, uv_loop_t *loop, const char *script, int watch, int flags)
{
    char *copy = strdup(script), *dir;
    int rc;

    if (copy == NULL)
        return UV_ENOMEM;
    r->script = script;
    r->flags = flags;
    r->base = strdup(basename(copy));
    free(copy);
    copy = strdup(script);
    dir = copy ? dirname(copy) : NULL;
    r->last = slurp(script, &r->last_len);
    uv_signal_init(loop, &r->hup);
    uv_timer_init(loop, &r->settle);
    uv_fs_event_init(loop, &r->watch);
    r->hup.data = r->settle.data = r->watch.data = r;
    rc = uv_signal_start(&r->hup, on_hup, SIGHUP);
    if (rc == 0 && watch) {
        rc = dir && r->base ? uv_fs_event_start(&r->watch, on_change, dir, 0) : UV_ENOMEM;
        r->watching = rc == 0;
    }
    free(copy);
    uv_unref((uv_handle_t *) &r->hup);  /* the job, not the triggers, keeps the loop alive */
    uv_unref((uv_handle_t *) &r->watch);
    uv_unref((uv_handle_t *) &r->settle);
    return rc;
}

static void reloader_close(reloader_t *r)
{
    uv_close((uv_handle_t *) &r->hup, NULL);
    uv_close((uv_handle_t *) &r->watch, NULL);
    uv_close((uv_handle_t *) &r->settle, NULL);
    free(r->base);
    free(r->last);
}

static void close_left(uv_handle_t *handle, void *arg)
{
    (void) arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

int main(int argc, char **argv)
{
    uv_loop_t loop;
    reloader_t reloader;
    int watch = 0, reload_flags = 0;
    const char *master = NULL, *lua_dir = getenv("STREAMHOST_LUA_DIR"), *ui = NULL;
    char ui_addr[128];
    int i = 1, err = 0, rc, ui_port = 4040;

#ifdef __GLIBC__
    /* A fixed mmap threshold: glibc raises it to the size of each large chunk freed, after
     * which the kernels' per-task tables (megabytes, freed by worker threads) stay in the
     * threads' heaps and the resident size grows. The library leaves this to its embedder. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif

    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("streamhost %s\n", STREAMHOST_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch = 1;
        } else if (strcmp(argv[i], "--recover-new-script") == 0) {
            setenv("STREAMHOST_RECOVER_NEW_SCRIPT", "1", 1);  /* read by getOrCreate */
        } else if (strcmp(argv[i], "--reload-drop-state") == 0) {
            reload_flags |= SH_RELOAD_DROP_STATE;
        } else if (strcmp(argv[i], "--master") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamhost: --master needs a value: local, local[N] or local[*]\n");
                return 2;
            }
            master = argv[++i];
        } else if (strncmp(argv[i], "--master=", 9) == 0) {
            master = argv[i] + 9;
        } else if (strcmp(argv[i], "--ui") == 0 || strncmp(argv[i], "--ui=", 5) == 0) {
            /* A value is the next argument unless that is the script (a bare --ui). */
            ui = argv[i][4] == '=' ? argv[i] + 5
                 : i + 2 < argc && parse_ui(argv[i + 1], ui_addr, sizeof ui_addr, &ui_port) == 0 ? argv[++i]
                 : "4040";
            if (parse_ui(ui, ui_addr, sizeof ui_addr, &ui_port) != 0) {
                fprintf(stderr, "streamhost: --ui '%s': expected [ADDR:]PORT, such as 4040 or 127.0.0.1:4040\n", ui);
                return 2;
            }
        } else {
            fprintf(stderr, "streamhost: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "streamhost: no job script given\n");
        usage(stderr);
        return 2;
    }
    host = sh_host_new(&err);
    if (host == NULL) {
        fprintf(stderr, "streamhost: cannot create the host (error %d)\n", err);
        return 1;
    }
    memset(&reloader, 0, sizeof reloader);
    if (uv_loop_init(&loop) != 0 || sh_host_attach(host, &loop) != 0) {
        fprintf(stderr, "streamhost: cannot make the event loop\n");
        return 1;
    }
    rc = 0;
    if (master != NULL)
        rc = sh_host_set_master(host, master);
    if (rc == 0 && lua_dir != NULL && lua_dir[0] != '\0')
        rc = sh_host_set_lua_dir(host, lua_dir);
    if (rc == 0 && ui != NULL) {
        rc = sh_host_set_ui(host, ui_addr, ui_port);
        if (rc == 0)
            fprintf(stderr, "streamhost: status page at http://%s%s%s:%d/\n",
                    strchr(ui_addr, ':') ? "[" : "", ui_addr, strchr(ui_addr, ':') ? "]" : "",
                    sh_host_ui_port(host));
    }
    if (rc == 0)
        rc = sh_host_load(host, argv[i], argc - i - 1, (const char *const *) argv + i + 1);
    if (rc == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        rc = reloader_start(&reloader, &loop, argv[i], watch, reload_flags);
        if (rc != 0) {
            fprintf(stderr, "streamhost: --watch %s: %s\n", argv[i], uv_strerror(rc));
            rc = 1;
        } else {
            rc = sh_host_start(host);
            while (!sh_host_finished(host, &rc))
                uv_run(&loop, UV_RUN_ONCE);
        }
    }
    if (rc != 0)
        fprintf(stderr, "streamhost: %s\n", sh_host_last_error(host));
    fflush(stdout);
    {
        sh_host_t *h = host;
        host = NULL;  /* a signal from here on finds no host to stop */
        sh_host_free(h);
    }
    if (reloader.script != NULL)
        reloader_close(&reloader);
    uv_walk(&loop, close_left, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);  /* what is left closes */
    uv_loop_close(&loop);
    return rc == 0 ? 0 : 1;
}

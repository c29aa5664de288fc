/* sh_main.c: the `streamhost` executable, a thin main over host/streamhost.h. */
#include "streamhost.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sh_host_t *host;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: streamhost [--master local[N]] JOB.lua [ARGS...]\n"
            "\n"
            "Runs a streaming job written against the pyspark.streaming API in Lua.\n"
            "ARGS reach the script as the table `arg` (arg[1], arg[2], ...).\n"
            "\n"
            "  --master M   local, local[N] (N worker threads) or local[*] (one per core);\n"
            "               used when the script's SparkContext names no master\n"
            "  --help       this text\n"
            "  --version    the version\n"
            "\n"
            "Ctrl-C stops the job gracefully; a second Ctrl-C ends the process.\n"
            "Environment: STREAMHOST_LUA_DIR overrides where the streamhost Lua modules are.\n");
}

static void on_signal(int sig)
{
    /* The first signal asks for a graceful stop; the default action handles a second one. */
    signal(sig, SIG_DFL);
    if (host != NULL)
        sh_host_stop(host);
}

int main(int argc, char **argv)
{
    const char *master = NULL, *lua_dir = getenv("STREAMHOST_LUA_DIR");
    int i = 1, err = 0, rc;

    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("streamhost %s\n", STREAMHOST_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--master") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "streamhost: --master needs a value: local, local[N] or local[*]\n");
                return 2;
            }
            master = argv[++i];
        } else if (strncmp(argv[i], "--master=", 9) == 0) {
            master = argv[i] + 9;
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
    rc = 0;
    if (master != NULL)
        rc = sh_host_set_master(host, master);
    if (rc == 0 && lua_dir != NULL && lua_dir[0] != '\0')
        rc = sh_host_set_lua_dir(host, lua_dir);
    if (rc == 0)
        rc = sh_host_load(host, argv[i], argc - i - 1, (const char *const *) argv + i + 1);
    if (rc == 0) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);
        rc = sh_host_run(host);
    }
    if (rc != 0)
        fprintf(stderr, "streamhost: %s\n", sh_host_last_error(host));
    fflush(stdout);
    sh_host_free(host);
    host = NULL;
    return rc == 0 ? 0 : 1;
}

/* game_server.c: a toy game server that embeds streamhost (examples/embed/README in the main
 * README): its own libuv loop turns a game tick; two producer threads push player events into
 * the job's embedded stream; leaderboards come back through an output callback; SIGHUP (or the
 * tick given on the command line) hot-reloads the job script. At the end it checks that every
 * point pushed was counted once.
 *
 * usage: game_server JOB.lua [SECONDS [RELOAD_JOB.lua RELOAD_AT_SECOND]]
 * Build in the tree with `make`, or against an installed streamhost:
 *   cc game_server.c $(pkg-config --cflags --libs streamhost) -o game_server */
#include <streamhost.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NPLAYERS 4
#define TICK_MS 100

static const char *players[NPLAYERS] = { "alice", "bob", "carol", "dave" };

typedef struct {
    sh_host_t *host;
    pthread_t threads[2];
    uv_loop_t loop;
    uv_timer_t tick;
    uv_signal_t hup;
    const char *script, *reload_script;
    int ticks, end_tick, reload_tick;
    int producing;               /* atomic: the producers run while set */
    long pushed[NPLAYERS];       /* atomic: points each player scored (pushed and taken) */
    long counted[NPLAYERS];      /* loop thread: points the job counted ("points" output) */
    int boards;                  /* leaderboards received */
    int joined;                  /* the producers have ended */
} game_t;

typedef struct {
    game_t *g;
    int first;                   /* this producer's players: first and first + 1 */
} producer_t;

/* A producer thread: events for its two players, as fast as the job takes them. */
static void *produce(void *arg)
{
    producer_t *p = arg;
    game_t *g = p->g;
    unsigned seed = (unsigned) p->first * 7919u + 1;
    char rec[64];

    while (__atomic_load_n(&g->producing, __ATOMIC_ACQUIRE)) {
        int who = p->first + (int) (rand_r(&seed) % 2), pts = 1 + (int) (rand_r(&seed) % 3);
        int len = snprintf(rec, sizeof rec, "%s %d", players[who], pts), rc;

        while ((rc = sh_host_push(g->host, "events", rec, (size_t) len)) == SH_EAGAIN
               && __atomic_load_n(&g->producing, __ATOMIC_ACQUIRE))
            usleep(1000);  /* the queue is full: the job is behind, so wait */
        if (rc == 0)
            __atomic_add_fetch(&g->pushed[who], pts, __ATOMIC_RELAXED);
        else if (rc != SH_EINVAL)  /* EINVAL: the stream is not up yet (or gone) */
            fprintf(stderr, "game: push failed: %d\n", rc);
        usleep(500);
    }
    return NULL;
}

static int player_index(const char *name, size_t len)
{
    int i;

    for (i = 0; i < NPLAYERS; i++)
        if (strlen(players[i]) == len && memcmp(players[i], name, len) == 0)
            return i;
    return -1;
}

/* Parses one {"player", points} record; the index or -1. */
static int parse(const sh_record_t *r, long *points)
{
    char buf[128];
    const char *q;
    size_t len = r->len < sizeof buf - 1 ? r->len : sizeof buf - 1;

    memcpy(buf, r->data, len);
    buf[len] = '\0';
    if (strncmp(buf, "{\"", 2) != 0 || (q = strchr(buf + 2, '"')) == NULL)
        return -1;
    *points = atol(q + 2);
    return player_index(buf + 2, (size_t) (q - buf - 2));
}

/* Outputs, on the loop thread. */
static void on_points(void *ud, const char *name, double t, const sh_record_t *recs, size_t n)
{
    game_t *g = ud;
    size_t i;
    long pts;
    int who;

    (void) name;
    (void) t;
    for (i = 0; i < n; i++)
        if ((who = parse(&recs[i], &pts)) >= 0)
            g->counted[who] += pts;
}

static void on_leaderboard(void *ud, const char *name, double t, const sh_record_t *recs,
                           size_t n)
{
    game_t *g = ud;
    size_t i;

    (void) name;
    g->boards++;
    printf("leaderboard at %.2f:", t);
    for (i = 0; i < n; i++)
        printf(" %zu. %.*s", i + 1, (int) recs[i].len, recs[i].data);
    printf("\n");
    fflush(stdout);
}

static void reload(game_t *g, const char *script)
{
    if (sh_host_reload(g->host, script) == 0)
        printf("game: reloading %s\n", script);
    else
        printf("game: reload of %s refused: %s\n", script, sh_host_last_error(g->host));
    fflush(stdout);
}

static void on_tick(uv_timer_t *t)
{
    game_t *g = t->data;

    g->ticks++;
    if (g->reload_script != NULL && g->ticks == g->reload_tick)
        reload(g, g->reload_script);
    if (g->ticks == g->end_tick) {
        /* The producers stop first, so that everything they pushed is in before the stop. */
        __atomic_store_n(&g->producing, 0, __ATOMIC_RELEASE);
        pthread_join(g->threads[0], NULL);
        pthread_join(g->threads[1], NULL);
        g->joined = 1;
        sh_host_stop(g->host);  /* graceful: what was pushed is processed first */
        uv_timer_stop(t);
    }
}

static void on_hup(uv_signal_t *s, int sig)
{
    game_t *g = s->data;

    (void) sig;
    reload(g, g->script);
}

int main(int argc, char **argv)
{
    game_t g;
    producer_t prod[2];
    int err = 0, rc = 0, i, ok = 1;

    if (argc < 2) {
        fprintf(stderr, "usage: game_server JOB.lua [SECONDS [RELOAD_JOB.lua RELOAD_AT_SECOND]]\n");
        return 2;
    }
    memset(&g, 0, sizeof g);
    g.script = argv[1];
    g.end_tick = (argc > 2 ? atoi(argv[2]) : 5) * 1000 / TICK_MS;
    if (argc > 4) {
        g.reload_script = argv[3];
        g.reload_tick = (int) (atof(argv[4]) * 1000 / TICK_MS);
    }
    uv_loop_init(&g.loop);
    g.host = sh_host_new(&err);
    if (g.host == NULL) {
        fprintf(stderr, "game: cannot create the host: %d\n", err);
        return 1;
    }
    if (sh_host_set_master(g.host, "local[2]") != 0 || sh_host_attach(g.host, &g.loop) != 0
        || sh_host_on_output(g.host, "points", on_points, &g) != 0
        || sh_host_on_output(g.host, "leaderboard", on_leaderboard, &g) != 0
        || sh_host_load(g.host, g.script, 0, NULL) != 0 || sh_host_start(g.host) != 0) {
        fprintf(stderr, "game: %s\n", sh_host_last_error(g.host));
        sh_host_free(g.host);
        return 1;
    }
    uv_timer_init(&g.loop, &g.tick);
    g.tick.data = &g;
    uv_timer_start(&g.tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_init(&g.loop, &g.hup);
    g.hup.data = &g;
    uv_signal_start(&g.hup, on_hup, SIGHUP);
    uv_unref((uv_handle_t *) &g.hup);
    g.producing = 1;
    for (i = 0; i < 2; i++) {
        prod[i].g = &g;
        prod[i].first = 2 * i;
        pthread_create(&g.threads[i], NULL, produce, &prod[i]);
    }
    /* The game's loop: the host's work runs on it beside the tick. */
    while (!sh_host_finished(g.host, &rc))
        uv_run(&g.loop, UV_RUN_ONCE);
    __atomic_store_n(&g.producing, 0, __ATOMIC_RELEASE);
    for (i = 0; i < 2 && !g.joined; i++)
        pthread_join(g.threads[i], NULL);
    if (rc != 0)
        fprintf(stderr, "game: the job failed: %s\n", sh_host_last_error(g.host));
    sh_host_free(g.host);
    uv_close((uv_handle_t *) &g.tick, NULL);
    uv_close((uv_handle_t *) &g.hup, NULL);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    uv_loop_close(&g.loop);
    for (i = 0; i < NPLAYERS; i++) {
        printf("%s: pushed %ld, counted %ld\n", players[i], g.pushed[i], g.counted[i]);
        ok = ok && g.pushed[i] == g.counted[i] && g.pushed[i] > 0;
    }
    printf("%d leaderboards; %s\n", g.boards, ok ? "every point counted once" : "POINTS MISMATCH");
    return rc == 0 && ok && g.boards > 0 ? 0 : 1;
}

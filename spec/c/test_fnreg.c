/* test_fnreg.c: the registry of shipped values (host/sh_fnreg.c): reference counts, ids never
 * reused, the log of dropped ids and its bounded size, eviction, readers outliving an entry,
 * and puts and unrefs from several threads at once. */
#include "sh_common.h"
#include "sh_fnreg.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"


/* Brings a reader's log position up to date (the tests share the process-wide registry). */
static uint64_t log_now(void)
{
    uint64_t pos = 0, ids[64];

    while (sh__fnreg_dropped_since(&pos, ids, 64) != 0)
        ;
    return pos;
}

static void test_equal_bytes_share_an_entry_until_the_last_unref(void)
{
    size_t live0, bytes0, live, bytes;
    uint64_t a, b, c, pos = log_now(), ids[4];

    sh__fnreg_stats(&live0, &bytes0);
    a = sh__fnreg_put("alpha", 5);
    b = sh__fnreg_put("alpha", 5);
    c = sh__fnreg_put("beta", 4);
    CHECK(a != 0 && a == b && c != a, "ids %llu %llu %llu", (unsigned long long) a,
          (unsigned long long) b, (unsigned long long) c);
    sh__fnreg_stats(&live, &bytes);
    CHECK(live == live0 + 2 && bytes == bytes0 + 9, "live %zu bytes %zu", live, bytes);
    CHECK(sh__fnreg_unref(a) == 0, "first unref");
    CHECK(sh__fnreg_dropped_since(&pos, ids, 4) == 0, "logged while one reference is left");
    sh__fnreg_stats(&live, &bytes);
    CHECK(live == live0 + 2, "freed with a reference left");
    CHECK(sh__fnreg_unref(b) == 0, "second unref");
    CHECK(sh__fnreg_dropped_since(&pos, ids, 4) == 1 && ids[0] == a, "the drop is logged");
    CHECK(sh__fnreg_get(a) == NULL, "a dropped id is still readable");
    CHECK(sh__fnreg_unref(a) == SH_EINVAL, "unref of a dropped id");
    CHECK(sh__fnreg_unref(c) == 0, "unref c");
    sh__fnreg_stats(&live, &bytes);
    CHECK(live == live0 && bytes == bytes0, "live %zu bytes %zu", live, bytes);
    OK();
}

static void test_ids_are_never_reused(void)
{
    uint64_t a = sh__fnreg_put("same", 4), b;

    CHECK(sh__fnreg_unref(a) == 0, "unref");
    b = sh__fnreg_put("same", 4);
    CHECK(b > a, "id %llu after %llu", (unsigned long long) b, (unsigned long long) a);
    CHECK(sh__fnreg_unref(b) == 0, "unref");
    a = sh__fnreg_put(NULL, 0);
    CHECK(a > b, "empty bytes are an entry too");
    CHECK(sh__fnreg_unref(a) == 0, "unref");
    OK();
}

static void test_a_reader_keeps_the_bytes_after_the_drop(void)
{
    uint64_t id = sh__fnreg_put("payload", 7);
    sh_blob_t *b = sh__fnreg_get(id);

    CHECK(b != NULL && b->len == 7 && memcmp(b->data, "payload", 7) == 0, "get");
    CHECK(sh__fnreg_unref(id) == 0, "unref");
    CHECK(memcmp(b->data, "payload", 7) == 0, "bytes changed under the reader");
    sh_blob_unref(b);
    OK();
}

static void test_evict_logs_the_id_and_keeps_the_entry(void)
{
    uint64_t pos = log_now(), ids[4], id = sh__fnreg_put("evicted", 7);
    sh_blob_t *b;

    CHECK(sh__fnreg_evict(id) == 0, "evict");
    CHECK(sh__fnreg_dropped_since(&pos, ids, 4) == 1 && ids[0] == id, "evict is logged");
    b = sh__fnreg_get(id);
    CHECK(b != NULL, "the entry went with the eviction");
    sh_blob_unref(b);
    CHECK(sh__fnreg_unref(id) == 0, "unref");
    CHECK(sh__fnreg_evict(id) == SH_EINVAL, "evict of a dropped id");
    OK();
}

static void test_the_log_hands_out_ids_in_pieces_and_says_when_it_lost_some(void)
{
    uint64_t pos = log_now(), lagging = pos, ids[8], first = 0, id = 0;
    int i, n, total = 0;
    char key[32];

    for (i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "piece %d", i);
        id = sh__fnreg_put(key, strlen(key));
        if (i == 0)
            first = id;
        sh__fnreg_unref(id);
    }
    n = sh__fnreg_dropped_since(&pos, ids, 8);
    CHECK(n == 8 && ids[0] == first, "first piece: %d", n);
    total += n;
    while ((n = sh__fnreg_dropped_since(&pos, ids, 8)) > 0)
        total += n;
    CHECK(n == 0 && total == 20 && ids[3] == id, "total %d", total);
    for (i = 0; i < SH_FNREG_LOG_SIZE; i++) {
        snprintf(key, sizeof key, "overflow %d", i);
        sh__fnreg_unref(sh__fnreg_put(key, strlen(key)));
    }
    CHECK(sh__fnreg_dropped_since(&lagging, ids, 8) == SH_FNREG_LOST, "lost records not reported");
    CHECK(lagging == log_now(), "the position after a loss is not the newest");
    CHECK(sh__fnreg_dropped_since(&lagging, ids, 8) == 0, "nothing new after a loss");
    OK();
}

/* -- Threads ---------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 20000

static void *churn(void *arg)
{
    int t = (int) (intptr_t) arg, i;
    char key[32];

    for (i = 0; i < ROUNDS; i++) {
        uint64_t shared, own;
        sh_blob_t *b;

        snprintf(key, sizeof key, "shared %d", i % 16);  /* the same bytes in every thread */
        shared = sh__fnreg_put(key, strlen(key));
        snprintf(key, sizeof key, "own %d %d", t, i);
        own = sh__fnreg_put(key, strlen(key));
        b = sh__fnreg_get(shared);
        if (shared == 0 || own == 0 || b == NULL || b->len != strlen("shared ") + (i % 16 < 10 ? 1 : 2))
            return (void *) 1;
        sh_blob_unref(b);
        sh__fnreg_unref(own);
        sh__fnreg_unref(shared);
    }
    return NULL;
}

static void test_threads_put_and_unref_at_once(void)
{
    pthread_t th[THREADS];
    size_t live0, bytes0, live, bytes;
    void *ret;
    int i, bad = 0;

    sh__fnreg_stats(&live0, &bytes0);
    for (i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, churn, (void *) (intptr_t) i);
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], &ret);
        bad += ret != NULL;
    }
    CHECK(bad == 0, "%d threads saw a wrong entry", bad);
    sh__fnreg_stats(&live, &bytes);
    CHECK(live == live0 && bytes == bytes0, "live %zu (was %zu)", live, live0);
    OK();
}

int main(void)
{
    test_equal_bytes_share_an_entry_until_the_last_unref();
    test_ids_are_never_reused();
    test_a_reader_keeps_the_bytes_after_the_drop();
    test_evict_logs_the_id_and_keeps_the_entry();
    test_the_log_hands_out_ids_in_pieces_and_says_when_it_lost_some();
    test_threads_put_and_unref_at_once();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

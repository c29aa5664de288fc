/* test_ckpt_writer.c: the checkpoint writer thread (sh_ckpt_writer.h) on real files: jobs
 * finish in submission order with their payload (bytes and blobs) read back whole, pruning
 * keeps the newest files and removes those below a number, a failed write names its path and
 * leaves the older files, the wake callback runs once per job, and freeing a writer with jobs
 * queued writes them all first. */
#include "sh_blob.h"
#include "sh_ckpt_file.h"
#include "sh_ckpt_writer.h"
#include "sh_common.h"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char root[] = "/tmp/sh-ckpt-writer-test-XXXXXX";
static atomic_int wakes;

static void count_wake(void *ud)
{
    (void) ud;
    atomic_fetch_add(&wakes, 1);
}

static const char *subdir(const char *name)
{
    static char path[512];

    snprintf(path, sizeof path, "%s/%s", root, name);
    mkdir(path, 0755);
    return path;
}

static int exists(const char *dir, const char *name)
{
    char path[600];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void test_jobs_finish_in_order_with_bytes_and_blobs(void)
{
    const char *dir = subdir("order");
    sh_ckpt_writer_t *w = sh_ckpt_writer_new(count_wake, NULL, NULL);
    sh_blob_t *b = sh_blob_new(SH_BLOB_LINES, 64);
    uint64_t ids[5], id;
    char name[32], path[600], *data, *msg;
    size_t len;
    int rc;

    CHECK(w != NULL && b != NULL, "writer or blob");
    CHECK(sh_blob_append(&b, "two\nlines\n", 10) == 0, "append");
    atomic_store(&wakes, 0);
    for (int i = 0; i < 5; i++) {
        sh_ckpt_job_t *j;

        snprintf(name, sizeof name, "file-%d", i + 1);
        j = sh_ckpt_job_new(dir, name);
        CHECK(j != NULL, "job");
        CHECK(sh_ckpt_job_add_bytes(j, "head:", 5) == 0, "bytes");
        CHECK(sh_ckpt_job_add_blob(j, b) == 0, "blob");
        CHECK(sh_ckpt_job_add_bytes(j, ":tail", 5) == 0, "bytes");
        ids[i] = sh_ckpt_writer_submit(w, j);
    }
    sh_blob_unref(b);  /* the jobs hold their own references */
    sh_ckpt_writer_drain(w);
    for (int i = 0; i < 5; i++) {
        CHECK(sh_ckpt_writer_next_done(w, &id, &rc, &msg) == 1, "result %d", i);
        CHECK(id == ids[i] && rc == 0 && msg == NULL, "job %d: id %llu rc %d", i,
              (unsigned long long) id, rc);
    }
    CHECK(sh_ckpt_writer_next_done(w, &id, &rc, &msg) == 0, "no more results");
    CHECK(atomic_load(&wakes) == 5, "wakes: %d", atomic_load(&wakes));
    snprintf(path, sizeof path, "%s/file-3", dir);
    CHECK(sh_ckpt_read(path, &data, &len, &msg) == 0, "read back: %s", msg ? msg : "");
    CHECK(len == 20 && memcmp(data, "head:two\nlines\n:tail", 20) == 0, "payload %.*s", (int) len, data);
    sh_free(data);
    sh_ckpt_writer_free(w);
    OK();
}

static void test_pruning_keeps_the_newest_and_removes_below(void)
{
    const char *dir = subdir("prune");
    sh_ckpt_writer_t *w = sh_ckpt_writer_new(NULL, NULL, NULL);
    char name[32], *msg;
    uint64_t id;
    int rc;

    CHECK(w != NULL, "writer");
    for (int i = 1; i <= 6; i++) {
        sh_ckpt_job_t *j;

        snprintf(name, sizeof name, "meta-%d", i);
        j = sh_ckpt_job_new(dir, name);
        CHECK(j != NULL && sh_ckpt_job_add_bytes(j, "x", 1) == 0, "job");
        CHECK(sh_ckpt_job_keep_newest(j, "meta-", 3) == 0, "keep");
        sh_ckpt_writer_submit(w, j);
        snprintf(name, sizeof name, "wal-%d", i * 100);
        j = sh_ckpt_job_new(dir, name);
        CHECK(j != NULL && sh_ckpt_job_add_bytes(j, "y", 1) == 0, "job");
        sh_ckpt_writer_submit(w, j);
    }
    {   /* a job that only prunes */
        sh_ckpt_job_t *j = sh_ckpt_job_new(dir, NULL);

        CHECK(j != NULL && sh_ckpt_job_remove_below(j, "wal-", 400) == 0, "prune job");
        sh_ckpt_writer_submit(w, j);
    }
    sh_ckpt_writer_drain(w);
    while (sh_ckpt_writer_next_done(w, &id, &rc, &msg) == 1)
        CHECK(rc == 0, "job %llu: %s", (unsigned long long) id, msg ? msg : "");
    CHECK(!exists(dir, "meta-3") && exists(dir, "meta-4") && exists(dir, "meta-6"), "meta kept");
    CHECK(!exists(dir, "wal-300") && exists(dir, "wal-400") && exists(dir, "wal-600"), "wal pruned");
    sh_ckpt_writer_free(w);
    OK();
}

static void test_a_failed_write_names_its_path_and_keeps_older_files(void)
{
    const char *dir = subdir("fail");
    char missing[600], *msg;
    sh_ckpt_writer_t *w = sh_ckpt_writer_new(NULL, NULL, NULL);
    sh_ckpt_job_t *j;
    uint64_t id;
    int rc;

    CHECK(w != NULL, "writer");
    j = sh_ckpt_job_new(dir, "meta-1");
    CHECK(j != NULL && sh_ckpt_job_add_bytes(j, "good", 4) == 0, "job");
    sh_ckpt_writer_submit(w, j);
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    j = sh_ckpt_job_new(missing, "meta-2");
    CHECK(j != NULL && sh_ckpt_job_add_bytes(j, "lost", 4) == 0, "job");
    CHECK(sh_ckpt_job_keep_newest(j, "meta-", 1) == 0, "keep");
    sh_ckpt_writer_submit(w, j);
    sh_ckpt_writer_drain(w);
    CHECK(sh_ckpt_writer_next_done(w, &id, &rc, &msg) == 1 && rc == 0, "first ok");
    CHECK(sh_ckpt_writer_next_done(w, &id, &rc, &msg) == 1, "second done");
    CHECK(rc != 0 && msg != NULL && strstr(msg, missing) != NULL, "rc %d msg %s", rc, msg ? msg : "(none)");
    sh_free(msg);
    CHECK(exists(dir, "meta-1"), "the older file stays");
    sh_ckpt_writer_free(w);
    OK();
}

static void test_free_writes_what_is_queued(void)
{
    const char *dir = subdir("free");
    sh_ckpt_writer_t *w = sh_ckpt_writer_new(count_wake, NULL, NULL);
    static char big[1 << 20];
    char name[32];

    CHECK(w != NULL, "writer");
    memset(big, 'z', sizeof big);
    for (int i = 0; i < 20; i++) {
        sh_ckpt_job_t *j;

        snprintf(name, sizeof name, "big-%d", i);
        j = sh_ckpt_job_new(dir, name);
        CHECK(j != NULL && sh_ckpt_job_add_bytes(j, big, sizeof big) == 0, "job");
        sh_ckpt_writer_submit(w, j);
    }
    sh_ckpt_writer_free(w);  /* results nobody took are freed with it */
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "big-%d", i);
        CHECK(exists(dir, name), "%s written before free returned", name);
    }
    OK();
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st; (void) flag; (void) ftw;
    return remove(path);
}

int main(void)
{
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_jobs_finish_in_order_with_bytes_and_blobs();
    test_pruning_keeps_the_newest_and_removes_below();
    test_a_failed_write_names_its_path_and_keeps_older_files();
    test_free_writes_what_is_queued();
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

/* sh_ckpt_writer.c: the checkpoint writer thread: a FIFO of jobs (a file's payload as pieces,
 * then pruning), written one at a time with sh_ckpt_writev, results queued for the owner. */
#include "sh_ckpt_writer.h"
#include "sh_ckpt_file.h"
#include "sh_common.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A piece of a payload: `len` bytes at offset `off` of the job's byte arena, or a blob. */
typedef struct {
    sh_blob_t *blob;
    size_t off, len;
} piece_t;

struct sh_ckpt_job_s {
    struct sh_ckpt_job_s *next;
    uint64_t id;
    char *dir, *name;
    char *bytes;                 /* the copied pieces, back to back */
    size_t nbytes, bytes_cap;
    piece_t *pieces;
    size_t npieces, pieces_cap;
    char *keep_prefix;           /* sh_ckpt_job_keep_newest */
    size_t keep;
    char *below_prefix;          /* sh_ckpt_job_remove_below */
    uint64_t below;
    int rc;                      /* the result, once done */
    char *errmsg;
};

struct sh_ckpt_writer_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* work queued, or a job finished (drain), or stop */
    pthread_t thread;
    sh_ckpt_job_t *todo, **todo_tail;
    sh_ckpt_job_t *done, **done_tail;
    uint64_t next_id, finished;  /* ids handed out; jobs finished (ids 1..finished) */
    int stop;
    sh_ckpt_wake_cb wake;
    void *ud;
};

/* -- Jobs ------------------------------------------------------------------ */

sh_ckpt_job_t *sh_ckpt_job_new(const char *dir, const char *name)
{
    sh_ckpt_job_t *j = sh_calloc(1, sizeof *j);

    if (j == NULL)
        return NULL;
    j->dir = sh__strdup(dir);
    j->name = name ? sh__strdup(name) : NULL;
    if (j->dir == NULL || (name && j->name == NULL)) {
        sh_ckpt_job_free(j);
        return NULL;
    }
    return j;
}

static int add_piece(sh_ckpt_job_t *j, piece_t p)
{
    if (j->npieces == j->pieces_cap) {
        size_t cap = j->pieces_cap ? j->pieces_cap * 2 : 8;
        piece_t *np = sh_realloc(j->pieces, cap * sizeof *np);

        if (np == NULL)
            return SH_ENOMEM;
        j->pieces = np;
        j->pieces_cap = cap;
    }
    j->pieces[j->npieces++] = p;
    return 0;
}

int sh_ckpt_job_add_bytes(sh_ckpt_job_t *j, const void *bytes, size_t len)
{
    piece_t p = { NULL, j->nbytes, len };

    if (j->nbytes + len > j->bytes_cap) {
        size_t cap = j->bytes_cap ? j->bytes_cap : 256;
        char *nb;

        while (cap < j->nbytes + len)
            cap *= 2;
        if ((nb = sh_realloc(j->bytes, cap)) == NULL)
            return SH_ENOMEM;
        j->bytes = nb;
        j->bytes_cap = cap;
    }
    if (add_piece(j, p) != 0)
        return SH_ENOMEM;
    memcpy(j->bytes + j->nbytes, bytes, len);
    j->nbytes += len;
    return 0;
}

int sh_ckpt_job_add_blob(sh_ckpt_job_t *j, sh_blob_t *b)
{
    piece_t p = { b, 0, b->len };

    if (add_piece(j, p) != 0)
        return SH_ENOMEM;
    sh_blob_ref(b);
    return 0;
}

int sh_ckpt_job_keep_newest(sh_ckpt_job_t *j, const char *prefix, size_t keep)
{
    char *copy = sh__strdup(prefix);

    if (copy == NULL)
        return SH_ENOMEM;
    sh_free(j->keep_prefix);
    j->keep_prefix = copy;
    j->keep = keep;
    return 0;
}

int sh_ckpt_job_remove_below(sh_ckpt_job_t *j, const char *prefix, uint64_t below)
{
    char *copy = sh__strdup(prefix);

    if (copy == NULL)
        return SH_ENOMEM;
    sh_free(j->below_prefix);
    j->below_prefix = copy;
    j->below = below;
    return 0;
}

/* Drops what the job holds for its payload (after the write, or when it is freed). */
static void release_payload(sh_ckpt_job_t *j)
{
    for (size_t i = 0; i < j->npieces; i++)
        sh_blob_unref(j->pieces[i].blob);
    sh_free(j->pieces);
    sh_free(j->bytes);
    j->pieces = NULL;
    j->bytes = NULL;
    j->npieces = j->nbytes = 0;
}

void sh_ckpt_job_free(sh_ckpt_job_t *j)
{
    if (j == NULL)
        return;
    release_payload(j);
    sh_free(j->dir);
    sh_free(j->name);
    sh_free(j->keep_prefix);
    sh_free(j->below_prefix);
    sh_free(j->errmsg);
    sh_free(j);
}

/* -- The thread -------------------------------------------------------------- */

/* Removes the files of dir named prefix<number> with number < below. 0 or the first error. */
static int remove_below(const char *dir, const char *prefix, uint64_t below, char **errmsg)
{
    char **names;
    size_t n, plen = strlen(prefix);
    int rc = sh_ckpt_list(dir, prefix, &names, &n, errmsg);

    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t num = strtoull(names[i] + plen, NULL, 10);
        char path[4096];

        if (num >= below)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT && rc == 0) {
            rc = SH__ERR(errno);
            if (errmsg) {
                char buf[4200];

                snprintf(buf, sizeof buf, "cannot remove old checkpoint file %s: %s", path,
                         strerror(errno));
                *errmsg = sh__strdup(buf);
            }
        }
    }
    sh_ckpt_names_free(names, n);
    return rc;
}

/* Writes the job's file and prunes; sets j->rc and j->errmsg. Writer thread. */
static void run_job(sh_ckpt_job_t *j)
{
    sh_ckpt_piece_t *v = NULL;
    char *msg = NULL;

    if (j->name != NULL) {
        v = sh_calloc(j->npieces, sizeof *v);
        if (v == NULL) {
            j->rc = SH_ENOMEM;
            j->errmsg = sh__strdup("out of memory writing a checkpoint");
            return;
        }
        for (size_t i = 0; i < j->npieces; i++) {
            const piece_t *p = &j->pieces[i];

            v[i].data = p->blob ? (const void *) p->blob->data : (const void *) (j->bytes + p->off);
            v[i].len = p->len;
        }
        j->rc = sh_ckpt_writev(j->dir, j->name, v, j->npieces, &j->errmsg);
        sh_free(v);
        release_payload(j);
        if (j->rc != 0)
            return;  /* the old files stay: they are the last good checkpoints */
        sh_free(j->errmsg);  /* a warning about the directory fsync: the file is there */
        j->errmsg = NULL;
    }
    if (j->keep_prefix && (j->rc = sh_ckpt_keep_newest(j->dir, j->keep_prefix, j->keep, &msg)) != 0) {
        j->errmsg = msg;
        return;
    }
    if (j->below_prefix)
        j->rc = remove_below(j->dir, j->below_prefix, j->below, &j->errmsg);
}

static void *writer_main(void *arg)
{
    sh_ckpt_writer_t *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        sh_ckpt_job_t *j;

        while (w->todo == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->todo == NULL)
            break;  /* stopping, and nothing left to write */
        j = w->todo;
        w->todo = j->next;
        if (w->todo == NULL)
            w->todo_tail = &w->todo;
        pthread_mutex_unlock(&w->mu);

        run_job(j);

        pthread_mutex_lock(&w->mu);
        j->next = NULL;
        *w->done_tail = j;
        w->done_tail = &j->next;
        if (w->wake && !w->stop) {
            pthread_mutex_unlock(&w->mu);
            w->wake(w->ud);
            pthread_mutex_lock(&w->mu);
        }
        /* Only after the wake: a drain that returns has seen every job's wake too. */
        w->finished = j->id;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* -- The owner's side ------------------------------------------------------ */

sh_ckpt_writer_t *sh_ckpt_writer_new(sh_ckpt_wake_cb wake, void *ud, char **errmsg)
{
    sh_ckpt_writer_t *w = sh_calloc(1, sizeof *w);
    int rc;

    if (errmsg)
        *errmsg = NULL;
    if (w == NULL) {
        if (errmsg)
            *errmsg = sh__strdup("out of memory starting the checkpoint writer");
        return NULL;
    }
    w->todo_tail = &w->todo;
    w->done_tail = &w->done;
    w->wake = wake;
    w->ud = ud;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if ((rc = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
        if (errmsg) {
            char buf[200];

            snprintf(buf, sizeof buf, "cannot start the checkpoint writer thread: %s", strerror(rc));
            *errmsg = sh__strdup(buf);
        }
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        sh_free(w);
        return NULL;
    }
    return w;
}

uint64_t sh_ckpt_writer_submit(sh_ckpt_writer_t *w, sh_ckpt_job_t *j)
{
    uint64_t id;

    pthread_mutex_lock(&w->mu);
    id = j->id = ++w->next_id;
    j->next = NULL;
    *w->todo_tail = j;
    w->todo_tail = &j->next;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return id;
}

int sh_ckpt_writer_next_done(sh_ckpt_writer_t *w, uint64_t *id, int *rc, char **errmsg)
{
    sh_ckpt_job_t *j;

    pthread_mutex_lock(&w->mu);
    j = w->done;
    if (j != NULL) {
        w->done = j->next;
        if (w->done == NULL)
            w->done_tail = &w->done;
    }
    pthread_mutex_unlock(&w->mu);
    if (j == NULL)
        return 0;
    *id = j->id;
    *rc = j->rc;
    *errmsg = j->errmsg;
    j->errmsg = NULL;
    sh_ckpt_job_free(j);
    return 1;
}

void sh_ckpt_writer_drain(sh_ckpt_writer_t *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->finished < w->next_id)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

void sh_ckpt_writer_free(sh_ckpt_writer_t *w)
{
    sh_ckpt_job_t *j;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while ((j = w->done) != NULL) {
        w->done = j->next;
        sh_ckpt_job_free(j);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    sh_free(w);
}

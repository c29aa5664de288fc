/* sh_in_kinesis_recv.c: the receiver behind KinesisUtils.createStream: lists the stream's
 * shards (ListShards, else DescribeStream), follows each with GetShardIterator / GetRecords on
 * the loop (sh_kinesis_call over libcurl multi), a parent shard read to its end before its
 * children start, and appends the records to one scheduler input as SH_BLOB_KINESIS blocks.
 * Throttling, expired iterators and server errors are retried with backoff and reported as
 * events; backpressure holds GetRecords back. */
#include "sh_in_kinesis.h"
#include "sh_common.h"
#include "sh_buf.h"
#include "sh_events.h"
#include "sh_kinesis_call.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))
#define TICK_MS 10             /* the shortest wait between two looks at the shards */
#define IDLE_TICK_MS 1000      /* the longest (a safety net: an answer wakes the receiver) */
#define CHUNK_BYTES (1 << 20)
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define GET_LIMIT 10000       /* records a GetRecords asks for (the service's maximum) */
#define GET_LIMIT_SLOW 1000   /* ... for a while after backpressure held reading back */
#define SLOW_AFTER_PAUSE_MS 10000
#define GET_INTERVAL_MS 200   /* the service allows 5 GetRecords a second per shard */
#define MAX_GETS_IN_FLIGHT 8  /* each answer may hold 10 MB of records, copied several times */

enum { S_WAIT, S_ITER, S_READ, S_DONE };

typedef struct shard_s {
    struct sh_kinesis_recv_s *r;
    char *id, *parent, *adj;
    char *last_seq;        /* the last record read (or the saved position) */
    char *iter;            /* S_READ: the next GetRecords' iterator */
    char *last_error;      /* the last error of this shard reported */
    int state;
    int busy;              /* a call is in flight */
    int horizon;           /* no position: start at TRIM_HORIZON (else LATEST) */
    int64_t latest_ms;     /* when the LATEST iterator was asked for (0: none was) */
    int latest_noted;      /* latest_ms went to the scheduler (so into the positions) */
    int64_t due_ms;        /* no call before */
    int64_t next_get_ms;   /* no GetRecords before (the per-shard rate limit) */
    int backoff_ms;
} shard_t;

struct sh_kinesis_recv_s {
    uv_timer_t tick;
    sh_curl_uv_t *http;
    sh_kinesis_ep_t *ep;
    char *stream;
    sh_kinesis_opts_t o;
    sh_sched_t *sched;
    int input;
    int paused;
    int npauses;              /* times backpressure held GetRecords back */
    int64_t paused_ms;        /* when backpressure last held reading back */
    int gets;                 /* GetRecords in flight */
    shard_t **shards;
    int nshards, cap;
    sh_kinesis_pos_t *saved;  /* positions to resume after */
    int listed;               /* a listing has completed */
    int listing;              /* a listing call is in flight */
    int describe;             /* ListShards is unknown here: DescribeStream lists */
    int64_t list_due_ms;
    int list_backoff_ms;
    char *list_token;         /* paging: NextToken, or the last shard id for DescribeStream */
    sh_blob_t *chunk;
    int closing;
    char *last_error;         /* the last error reported (each is said once until it changes) */
    sh_events_t events;       /* for the driver (sh_ffi_kinesis_recv_event) */
};

/* An error: reported once until another one comes (or reading succeeds again). */
/* `last` is the listing's or a shard's last error. */
__attribute__((format(printf, 3, 4)))
static void report_to(sh_kinesis_recv_t *r, char **last, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (*last && strcmp(*last, msg) == 0)
        return;
    sh_free(*last);
    *last = sh__strdup(msg);
    sh_events_push(&r->events, 0, msg);
}

#define report(r, ...) report_to((r), &(r)->last_error, __VA_ARGS__)
#define shard_report(s, ...) report_to((s)->r, &(s)->last_error, __VA_ARGS__)

/* A call succeeded after errors were reported: said once. */
static void succeeded(sh_kinesis_recv_t *r, char **last, const char *what)
{
    char msg[300];

    if (*last == NULL)
        return;
    sh_free(*last);
    *last = NULL;
    snprintf(msg, sizeof msg, "%s%sreceiving again", what ? what : "", what ? ": " : "");
    sh_events_push(&r->events, 0, msg);
}

static int next_backoff(int *b)
{
    *b = *b ? (*b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *b * 2) : BACKOFF_FIRST_MS;
    return *b;
}

static shard_t *find(sh_kinesis_recv_t *r, const char *id)
{
    int i;

    for (i = 0; id && i < r->nshards; i++)
        if (strcmp(r->shards[i]->id, id) == 0)
            return r->shards[i];
    return NULL;
}

/* Hands the records gathered to the scheduler (count: records, not end marks). 0, or -1
 * when the scheduler had no memory for them: they are dropped (the caller reads them again).
 * The chunk is empty after either. */
static int flush_chunk(sh_kinesis_recv_t *r, uint32_t count)
{
    sh_blob_t *c = r->chunk;
    int rc = 0;

    if (c == NULL || c->len == 0)
        return 0;
    if (r->sched && sh_sched_input_append(r->sched, r->input, c->data, c->len, count))
        rc = -1;
    c->len = 0;
    c->count = 0;
    return rc;
}

static char *json_body(sh_kinesis_recv_t *r, const char *k1, const char *v1, const char *k2,
                       const char *v2, const char *k3, const char *v3)
{
    sh_buf_t b;
    const char *ks[3] = { k1, k2, k3 }, *vs[3] = { v1, v2, v3 };
    int i, n = 0;

    (void) r;
    sh_buf_init(&b);
    sh_buf_add(&b, "{", 1);
    for (i = 0; i < 3; i++) {
        if (ks[i] == NULL || vs[i] == NULL)
            continue;
        if (n++)
            sh_buf_add(&b, ",", 1);
        sh_buf_json_str(&b, ks[i]);
        sh_buf_add(&b, ":", 1);
        sh_buf_json_str(&b, vs[i]);
    }
    sh_buf_add(&b, "}", 1);
    return sh_buf_take(&b, NULL);
}

/* -- Listing the shards ---------------------------------------------------------------- */

static void on_listed(void *ud, const sh_kinesis_answer_t *a);

static void start_listing(sh_kinesis_recv_t *r)
{
    char *body;
    int rc;

    if (r->describe)
        body = json_body(r, "StreamName", r->stream, "ExclusiveStartShardId", r->list_token,
                         NULL, NULL);
    else if (r->list_token)
        body = json_body(r, "NextToken", r->list_token, NULL, NULL, NULL, NULL);
    else
        body = json_body(r, "StreamName", r->stream, NULL, NULL, NULL, NULL);
    rc = body ? sh_kinesis_call(r->http, r->ep, r->describe ? "DescribeStream" : "ListShards",
                                body, r->o.timeout_ms, on_listed, r) : -1;
    sh_free(body);
    if (rc == 0) {
        r->listing = 1;
    } else {
        report(r, "listing the shards of stream %s at %s: the call could not be made (out of "
               "memory, or no signature; retrying)", r->stream, r->ep->url);
        r->list_due_ms = sh__now_ms() + next_backoff(&r->list_backoff_ms);
    }
}

/* A shard of a listing: new ones join the table, waiting for their parents. */
static void add_shard(sh_kinesis_recv_t *r, json_t *s)
{
    const char *id = json_string_value(json_object_get(s, "ShardId"));
    json_t *range = json_object_get(s, "SequenceNumberRange");
    int closed = json_object_get(range, "EndingSequenceNumber") != NULL;
    shard_t *sh;
    int i;

    if (id == NULL || find(r, id))
        return;
    if (r->nshards == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        shard_t **v = sh_realloc(r->shards, (size_t) cap * sizeof *v);

        if (v == NULL)
            return;
        r->shards = v;
        r->cap = cap;
    }
    sh = sh_calloc(1, sizeof *sh);
    if (sh == NULL)
        return;
    sh->r = r;
    sh->id = sh__strdup(id);
    if (json_string_value(json_object_get(s, "ParentShardId")))
        sh->parent = sh__strdup(json_string_value(json_object_get(s, "ParentShardId")));
    if (json_string_value(json_object_get(s, "AdjacentParentShardId")))
        sh->adj = sh__strdup(json_string_value(json_object_get(s, "AdjacentParentShardId")));
    /* A child whose parent's id was lost could be read before its parent: no shard at all
     * (the next listing adds it again). */
    if (sh->id == NULL ||
        (json_string_value(json_object_get(s, "ParentShardId")) && sh->parent == NULL) ||
        (json_string_value(json_object_get(s, "AdjacentParentShardId")) && sh->adj == NULL)) {
        sh_free(sh->id);
        sh_free(sh->parent);
        sh_free(sh->adj);
        sh_free(sh);
        return;
    }
    sh->state = S_WAIT;
    /* Where a shard with no saved position starts: the initial position for the shards there
     * at the first listing, the start of the shard for those that appear later (children of
     * a split or merge: nothing of them may be lost) and for children of a shard saved as
     * read to its end. With LATEST, a shard already closed at the start has nothing after
     * the latest record: it counts as read. */
    sh->horizon = !r->o.latest || r->listed;
    for (i = 0; r->saved && i < sh_ffi_kinesis_pos_count(r->saved); i++) {
        const char *sid = sh_ffi_kinesis_pos_shard(r->saved, i);

        if (strcmp(sid, id) == 0) {
            const char *seq = sh_ffi_kinesis_pos_seq(r->saved, i);

            if (sh_ffi_kinesis_pos_ended(r->saved, i))
                sh->state = S_DONE;
            else if (seq)
                sh->last_seq = sh__strdup(seq);
            else  /* a LATEST shard that read nothing: it resumes at that time */
                sh->latest_ms = (int64_t) sh_ffi_kinesis_pos_latest(r->saved, i);
        } else if (sh_ffi_kinesis_pos_ended(r->saved, i) &&
                   ((sh->parent && strcmp(sid, sh->parent) == 0) ||
                    (sh->adj && strcmp(sid, sh->adj) == 0))) {
            sh->horizon = 1;
        }
    }
    /* A child of a shard that will be read (to its end) starts where the child starts, as the
     * Kinesis Client Library does: only the shards at the tip start at LATEST. */
    if (!sh->horizon) {
        shard_t *p = find(r, sh->parent), *q = find(r, sh->adj);

        if ((p && p->state != S_DONE) || (q && q->state != S_DONE))
            sh->horizon = 1;
    }
    if (sh->state == S_WAIT && sh->last_seq == NULL && !sh->horizon && !sh->latest_ms && closed)
        sh->state = S_DONE;
    r->shards[r->nshards++] = sh;
}

static void listed(void *ud, const sh_kinesis_answer_t *a)
{
    sh_kinesis_recv_t *r = ud;
    json_t *shards, *desc;
    const char *token = NULL;
    size_t i;
    int more = 0;

    r->listing = 0;
    if (a->kind == SH_KC_FAILED && !r->describe && a->type &&
        (strstr(a->type, "UnknownOperation") || strstr(a->type, "InvalidAction"))) {
        /* No ListShards here (an older service or emulator): DescribeStream lists. */
        r->describe = 1;
        sh_free(r->list_token);
        r->list_token = NULL;
        r->list_due_ms = 0;
        return;
    }
    if (a->kind != SH_KC_OK) {
        int ms = next_backoff(&r->list_backoff_ms);

        if (a->type && strcmp(a->type, "ResourceNotFoundException") == 0) {
            ms = r->list_backoff_ms = BACKOFF_MAX_MS;
            report(r, "stream %s not found at %s: %s (trying again every %d ms)", r->stream,
                   r->ep->url, a->message, ms);
        } else {
            report(r, "listing the shards of stream %s at %s: %s (retrying)", r->stream,
                   r->ep->url, a->message);
        }
        /* A page token may have expired (ExpiredNextTokenException) or be refused: but for
         * throttling, the listing starts again from the first page. */
        if (a->kind != SH_KC_THROTTLED) {
            sh_free(r->list_token);
            r->list_token = NULL;
        }
        r->list_due_ms = sh__now_ms() + ms;
        return;
    }
    r->list_backoff_ms = 0;
    if (r->describe) {
        desc = json_object_get(a->json, "StreamDescription");
        shards = json_object_get(desc, "Shards");
        more = json_is_true(json_object_get(desc, "HasMoreShards"));
    } else {
        shards = json_object_get(a->json, "Shards");
        token = json_string_value(json_object_get(a->json, "NextToken"));
        more = token != NULL;
    }
    if (!json_is_array(shards)) {
        report(r, "listing the shards of stream %s at %s: the answer has no Shards array "
               "(retrying)", r->stream, r->ep->url);
        sh_free(r->list_token);
        r->list_token = NULL;
        r->list_due_ms = sh__now_ms() + next_backoff(&r->list_backoff_ms);
        return;
    }
    for (i = 0; i < json_array_size(shards); i++)
        add_shard(r, json_array_get(shards, i));
    sh_free(r->list_token);
    r->list_token = NULL;
    if (more && r->describe && json_array_size(shards) > 0)
        token = json_string_value(json_object_get(json_array_get(shards, json_array_size(shards) - 1), "ShardId"));
    if (more && token) {
        r->list_token = sh__strdup(token);
        r->list_due_ms = 0;  /* the next page at once */
        return;
    }
    r->listed = 1;
    succeeded(r, &r->last_error, NULL);
    r->list_due_ms = sh__now_ms() + r->o.list_ms;
}

/* -- Reading a shard ---------------------------------------------------------------------- */

static void on_iterator(void *ud, const sh_kinesis_answer_t *a);
static void on_records(void *ud, const sh_kinesis_answer_t *a);

/* A failed call of a shard: backoff, and the error said once. */
static void shard_failed(shard_t *s, const sh_kinesis_answer_t *a)
{
    int ms = next_backoff(&s->backoff_ms);

    if (a->kind == SH_KC_FAILED)
        ms = s->backoff_ms = BACKOFF_MAX_MS;
    shard_report(s, "shard %s of stream %s at %s: %s%s (retrying with backoff)", s->id,
                 s->r->stream, s->r->ep->url, a->kind == SH_KC_THROTTLED ? "throttled: " : "",
                 a->message);
    s->due_ms = sh__now_ms() + ms;
}

static void get_iterator(shard_t *s)
{
    sh_kinesis_recv_t *r = s->r;
    const char *type = s->last_seq ? "AFTER_SEQUENCE_NUMBER" : s->horizon ? "TRIM_HORIZON" : "LATEST";
    sh_buf_t b;
    char *body;

    /* A LATEST iterator that expired before any record was read: the next one starts at the
     * time the first was asked for, so that nothing put since is lost. */
    if (!s->last_seq && !s->horizon && s->latest_ms)
        type = "AT_TIMESTAMP";
    else if (!s->last_seq && !s->horizon)
        s->latest_ms = sh__now_ms();
    sh_buf_init(&b);
    sh_buf_add(&b, "{\"StreamName\":", 14);
    sh_buf_json_str(&b, r->stream);
    sh_buf_add(&b, ",\"ShardId\":", 11);
    sh_buf_json_str(&b, s->id);
    sh_buf_add(&b, ",\"ShardIteratorType\":", 21);
    sh_buf_json_str(&b, type);
    if (s->last_seq) {
        sh_buf_add(&b, ",\"StartingSequenceNumber\":", 26);
        sh_buf_json_str(&b, s->last_seq);
    } else if (strcmp(type, "AT_TIMESTAMP") == 0) {
        sh_buf_printf(&b, ",\"Timestamp\":%.3f", (double) s->latest_ms / 1000.0);
    }
    sh_buf_add(&b, "}", 1);
    body = sh_buf_take(&b, NULL);
    if (body && sh_kinesis_call(r->http, r->ep, "GetShardIterator", body, r->o.timeout_ms,
                                on_iterator, s) == 0) {
        s->busy = 1;
    } else {
        shard_report(s, "shard %s of stream %s: GetShardIterator could not be made (out of "
                     "memory, or no signature; retrying)", s->id, r->stream);
        s->due_ms = sh__now_ms() + next_backoff(&s->backoff_ms);
    }
    sh_free(body);
}

/* Reading a shard again after its last record handed to the scheduler (the start of the
 * shard, or its initial position, when none was): a new iterator after a backoff. */
static void read_again(shard_t *s)
{
    sh_free(s->iter);
    s->iter = NULL;
    s->state = S_ITER;
    s->due_ms = sh__now_ms() + next_backoff(&s->backoff_ms);
}

static void shard_ended(shard_t *s)
{
    sh_kinesis_recv_t *r = s->r;

    /* The end mark must reach the scheduler before the children start (their records would
     * otherwise be in the positions while the parent's end is not). */
    if (sh__kinesis_block_append(&r->chunk, SH_KINESIS_SHARD_END, s->id, NULL, NULL, NULL, 0, 0) ||
        flush_chunk(r, 0)) {
        r->chunk->len = 0;
        r->chunk->count = 0;
        shard_report(s, "out of memory: the end of shard %s of stream %s was not recorded "
                     "(reading its end again)", s->id, r->stream);
        read_again(s);
        return;
    }
    s->state = S_DONE;
    sh_free(s->iter);
    s->iter = NULL;
    r->list_due_ms = 0;  /* its children: list again now */
}

static void took_iterator(void *ud, const sh_kinesis_answer_t *a)
{
    shard_t *s = ud;
    const char *it;

    s->busy = 0;
    if (a->kind != SH_KC_OK) {
        shard_failed(s, a);
        return;
    }
    s->backoff_ms = 0;
    succeeded(s->r, &s->last_error, s->id);
    it = json_string_value(json_object_get(a->json, "ShardIterator"));
    if (it == NULL) {  /* a closed shard read to its end */
        shard_ended(s);
        return;
    }
    sh_free(s->iter);
    s->iter = sh__strdup(it);
    if (s->iter)
        s->state = S_READ;
    s->due_ms = 0;
    /* A shard at LATEST: the time goes into the positions, so that a recovery before its
     * first record resumes at that time (AT_TIMESTAMP), not at a later LATEST. */
    if (!s->last_seq && !s->horizon && s->latest_ms && !s->latest_noted) {
        sh_kinesis_recv_t *r = s->r;

        if (sh__kinesis_block_append(&r->chunk, SH_KINESIS_SHARD_LATEST, s->id, NULL, NULL, NULL,
                                     0, s->latest_ms) == 0 && flush_chunk(r, 0) == 0) {
            s->latest_noted = 1;
        } else {
            r->chunk->len = 0;
            r->chunk->count = 0;
            shard_report(s, "out of memory: the LATEST time of shard %s of stream %s is not in "
                         "the positions (a recovery before its first record starts at LATEST)",
                         s->id, r->stream);
        }
    }
}

static void get_records(shard_t *s)
{
    sh_kinesis_recv_t *r = s->r;
    int64_t now = sh__now_ms();
    /* Soon after backpressure, smaller answers: less memory in flight while it is near. */
    int limit = r->npauses && now - r->paused_ms < SLOW_AFTER_PAUSE_MS ? GET_LIMIT_SLOW : GET_LIMIT;
    sh_buf_t b;
    char *body;

    /* The next call of this shard waits GET_INTERVAL_MS whatever the answer is. */
    s->next_get_ms = now + GET_INTERVAL_MS;
    sh_buf_init(&b);
    sh_buf_add(&b, "{\"ShardIterator\":", 17);
    sh_buf_json_str(&b, s->iter);
    sh_buf_printf(&b, ",\"Limit\":%d}", limit);
    body = sh_buf_take(&b, NULL);
    if (body && sh_kinesis_call(r->http, r->ep, "GetRecords", body, r->o.timeout_ms,
                                on_records, s) == 0) {
        s->busy = 1;
        r->gets++;
    } else {
        shard_report(s, "shard %s of stream %s: GetRecords could not be made (out of memory, "
                     "or no signature; retrying)", s->id, r->stream);
        s->due_ms = now + next_backoff(&s->backoff_ms);
    }
    sh_free(body);
}

/* base64 into out (room for 3/4 of the text); the length, or -1 when it is not base64. */
static int unbase64(const char *in, size_t len, unsigned char *out)
{
    int n, pad = 0;

    if (len % 4 != 0 || len > INT32_MAX)
        return -1;
    if (len == 0)
        return 0;
    n = EVP_DecodeBlock(out, (const unsigned char *) in, (int) len);
    if (n < 0)
        return -1;
    pad = (in[len - 1] == '=') + (in[len - 2] == '=');
    return n - pad;
}

/* An arrival time in epoch ms from the answer's seconds; 0 for one out of range. */
static int64_t arrival_ms(json_t *at)
{
    double v = json_is_number(at) ? json_number_value(at) : 0;

    return v > 0 && v < 1e13 ? (int64_t) (v * 1000) : 0;
}

static void took_records(void *ud, const sh_kinesis_answer_t *a)
{
    shard_t *s = ud;
    sh_kinesis_recv_t *r = s->r;
    json_t *recs, *next;
    unsigned char *buf = NULL;
    size_t bufcap = 0, i;
    uint32_t count = 0;
    int64_t behind;
    /* taken: the last record in the chunk (or skipped); handed: the last one that reached the
     * scheduler (or was skipped with all before it handed). Both point into the answer. */
    const char *taken = NULL, *handed = NULL;
    int failed = 0;

    s->busy = 0;
    r->gets--;
    if (a->kind == SH_KC_EXPIRED) {
        /* A new iterator after the last record read (the start again when none was). */
        shard_report(s, "shard %s of stream %s: %s (getting a new iterator)", s->id, r->stream,
                     a->message);
        sh_free(s->iter);
        s->iter = NULL;
        s->state = S_ITER;
        s->due_ms = 0;
        return;
    }
    if (a->kind != SH_KC_OK) {
        shard_failed(s, a);
        return;
    }
    recs = json_object_get(a->json, "Records");
    next = json_object_get(a->json, "NextShardIterator");
    if (!json_is_array(recs) || (next != NULL && !json_is_string(next) && !json_is_null(next))) {
        shard_report(s, "shard %s of stream %s: GetRecords answered without a Records array "
                     "(retrying in %d ms)", s->id, r->stream, next_backoff(&s->backoff_ms));
        s->due_ms = sh__now_ms() + s->backoff_ms;
        return;
    }
    succeeded(r, &s->last_error, s->id);
    for (i = 0; i < json_array_size(recs) && !failed; i++) {
        json_t *rec = json_array_get(recs, i);
        const char *data = json_string_value(json_object_get(rec, "Data"));
        const char *seq = json_string_value(json_object_get(rec, "SequenceNumber"));
        const char *key = json_string_value(json_object_get(rec, "PartitionKey"));
        size_t dlen = data ? strlen(data) : 0;
        int n;

        if (seq == NULL || data == NULL) {
            shard_report(s, "shard %s of stream %s: GetRecords answered a record without %s "
                         "(skipped)", s->id, r->stream, seq ? "Data" : "SequenceNumber");
            continue;
        }
        if (dlen / 4 * 3 + 3 > bufcap) {
            unsigned char *nb = sh_realloc(buf, dlen / 4 * 3 + 3);

            if (nb == NULL) {
                failed = 1;
                break;
            }
            buf = nb;
            bufcap = dlen / 4 * 3 + 3;
        }
        n = unbase64(data, dlen, buf);
        if (n < 0) {
            shard_report(s, "shard %s of stream %s: record %s has Data that is not base64 "
                         "(skipped)", s->id, r->stream, seq);
            taken = seq;
            if (r->chunk->len == 0)
                handed = seq;
            continue;
        }
        if (sh__kinesis_block_append(&r->chunk, 0, s->id, seq, key ? key : "", (char *) buf,
                                     (size_t) n,
                                     arrival_ms(json_object_get(rec, "ApproximateArrivalTimestamp")))) {
            failed = 1;
            break;
        }
        count++;
        taken = seq;
        if (r->chunk->len >= CHUNK_BYTES) {
            if (flush_chunk(r, count))
                failed = 1;
            else
                handed = taken;
            count = 0;
        }
    }
    sh_free(buf);
    if (!failed) {
        if (flush_chunk(r, count))
            failed = 1;
        else
            handed = taken;
    }
    if (handed) {
        char *seq = sh__strdup(handed);

        if (seq == NULL) {
            failed = 1;  /* the position could not move: what was handed is read again */
        } else {
            sh_free(s->last_seq);
            s->last_seq = seq;
        }
    }
    if (failed) {
        /* What did not reach the scheduler is dropped here and read again, from a new
         * iterator after the last record that did: nothing is lost, and the shard does not
         * end on an answer taken in part. */
        r->chunk->len = 0;
        r->chunk->count = 0;
        shard_report(s, "out of memory: records of shard %s of stream %s were dropped "
                     "(reading them again after %s)", s->id, r->stream,
                     s->last_seq ? s->last_seq : "the start");
        read_again(s);
        return;
    }
    s->backoff_ms = 0;
    if (!json_is_string(next)) {
        shard_ended(s);
        return;
    }
    sh_free(s->iter);
    s->iter = sh__strdup(json_string_value(next));
    behind = json_integer_value(json_object_get(a->json, "MillisBehindLatest"));
    s->due_ms = json_array_size(recs) > 0 || behind > 0 ? 0 : sh__now_ms() + r->o.idle_ms;
    if (s->iter == NULL) {
        s->state = S_ITER;
        s->due_ms = sh__now_ms() + BACKOFF_FIRST_MS;
    }
}

static int parent_done(sh_kinesis_recv_t *r, const char *id)
{
    shard_t *p = find(r, id);

    /* A parent not listed is past the retention period: nothing of it is left to read. */
    return id == NULL || p == NULL || p->state == S_DONE;
}

/* The tick is one-shot: each sets the next for when something falls due, and an answer or
 * the end of backpressure wakes the receiver at once, so an idle receiver does not wake the
 * loop every TICK_MS. */
static void on_tick(uv_timer_t *t);

static void wake(sh_kinesis_recv_t *r)
{
    if (!r->closing)
        uv_timer_start(&r->tick, on_tick, 0, 0);
}

static void on_listed(void *ud, const sh_kinesis_answer_t *a)
{
    listed(ud, a);
    wake(ud);
}

static void on_iterator(void *ud, const sh_kinesis_answer_t *a)
{
    took_iterator(ud, a);
    wake(((shard_t *) ud)->r);
}

static void on_records(void *ud, const sh_kinesis_answer_t *a)
{
    took_records(ud, a);
    wake(((shard_t *) ud)->r);
}

static void on_tick(uv_timer_t *t)
{
    sh_kinesis_recv_t *r = t->data;
    int64_t now = sh__now_ms(), next = now + IDLE_TICK_MS;
    int i;

    if (r->sched == NULL)
        return;
    if (!r->listing && now >= r->list_due_ms)
        start_listing(r);
    if (!r->listing && r->list_due_ms < next)
        next = r->list_due_ms;
    for (i = 0; r->listed && i < r->nshards; i++) {
        shard_t *s = r->shards[i];
        int64_t due;

        if (s->state == S_WAIT && parent_done(r, s->parent) && parent_done(r, s->adj))
            s->state = S_ITER;
        if (s->busy || (s->state != S_ITER && s->state != S_READ))
            continue;
        due = s->due_ms;
        if (s->state == S_READ && s->next_get_ms > due)
            due = s->next_get_ms;
        if (due <= now) {
            if (s->state == S_ITER)
                get_iterator(s);
            else if (!r->paused && r->gets < MAX_GETS_IN_FLIGHT)
                get_records(s);  /* else the end of backpressure or an answer wakes it */
            if (s->busy)
                continue;
            due = s->due_ms > now ? s->due_ms : now + IDLE_TICK_MS;
        }
        if (due < next)
            next = due;
    }
    uv_timer_start(&r->tick, on_tick, (uint64_t) (next - now > TICK_MS ? next - now : TICK_MS), 0);
}

static void on_pause(void *ud, int pause)
{
    sh_kinesis_recv_t *r = ud;

    if (pause < 0)
        r->sched = NULL;
    else {
        r->npauses += pause && !r->paused;
        r->paused = pause;
        if (pause)
            r->paused_ms = sh__now_ms();
        else
            wake(r);
    }
}

static void free_recv(sh_kinesis_recv_t *r)
{
    int i;

    sh_events_clear(&r->events);
    for (i = 0; i < r->nshards; i++) {
        shard_t *s = r->shards[i];

        sh_free(s->id);
        sh_free(s->parent);
        sh_free(s->adj);
        sh_free(s->last_seq);
        sh_free(s->iter);
        sh_free(s->last_error);
        sh_free(s);
    }
    sh_free(r->shards);
    sh_kinesis_ep_free(r->ep);
    sh_ffi_kinesis_pos_free(r->saved);
    sh_blob_unref(r->chunk);
    sh_free(r->stream);
    sh_free(r->list_token);
    sh_free(r->last_error);
    sh_free(r);
}

static void on_closed(uv_handle_t *h)
{
    free_recv(h->data);
}

SH_EXPORT sh_kinesis_recv_t *sh_ffi_kinesis_recv_open(sh_host_t *h, sh_sched_t *sched, int input,
                                                      const sh_kinesis_opts_t *o,
                                                      const sh_kinesis_pos_t *saved,
                                                      char **errmsg)
{
    sh_kinesis_recv_t *r = sh_calloc(1, sizeof *r);
    char *err = NULL;
    int i;

    *errmsg = NULL;
    if (r == NULL)
        goto nomem;
    r->o = *o;
    r->o.stream = r->o.endpoint = r->o.region = r->o.access_key = r->o.secret_key = NULL;
    if (r->o.idle_ms <= 0)
        r->o.idle_ms = 200;
    if (r->o.list_ms <= 0)
        r->o.list_ms = 10000;
    if (r->o.timeout_ms <= 0)
        r->o.timeout_ms = 30000;
    r->ep = sh_kinesis_ep_new(o->endpoint, o->region, o->access_key, o->secret_key, &err);
    if (r->ep == NULL) {
        *errmsg = err;
        free_recv(r);
        return NULL;
    }
    r->stream = sh__strdup(o->stream);
    r->saved = sh_ffi_kinesis_pos_new();
    r->chunk = sh_blob_new(SH_BLOB_KINESIS, CHUNK_BYTES);
    if (r->stream == NULL || r->saved == NULL || r->chunk == NULL)
        goto nomem;
    for (i = 0; saved && i < sh_ffi_kinesis_pos_count(saved); i++)
        if (sh_ffi_kinesis_pos_set(r->saved, sh_ffi_kinesis_pos_shard(saved, i),
                                   sh_ffi_kinesis_pos_seq(saved, i),
                                   sh_ffi_kinesis_pos_ended(saved, i)) ||
            sh_ffi_kinesis_pos_set_latest(r->saved, sh_ffi_kinesis_pos_shard(saved, i),
                                          sh_ffi_kinesis_pos_latest(saved, i)))
            goto nomem;
    r->http = sh_curl_uv_new(h->loop);
    if (r->http == NULL) {
        *errmsg = sh__strdup("libcurl cannot start a client");
        free_recv(r);
        return NULL;
    }
    uv_timer_init(h->loop, &r->tick);
    r->tick.data = r;
    r->sched = sched;
    r->input = input;
    sh_sched_input_set_pause(sched, input, on_pause, r);
    uv_timer_start(&r->tick, on_tick, 0, 0);
    return r;
nomem:
    *errmsg = sh__strdup("out of memory");
    if (r)
        free_recv(r);
    return NULL;
}

SH_EXPORT int sh_ffi_kinesis_recv_event(sh_kinesis_recv_t *r, char **msg)
{
    return sh_events_take(&r->events, NULL, msg);
}

SH_EXPORT int sh_ffi_kinesis_recv_reading(const sh_kinesis_recv_t *r, int *ended, int *pauses)
{
    int i, n = 0, e = 0;

    for (i = 0; i < r->nshards; i++) {
        n += r->shards[i]->state == S_READ;
        e += r->shards[i]->state == S_DONE;
    }
    if (ended)
        *ended = e;
    if (pauses)
        *pauses = r->npauses;
    return n;
}

SH_EXPORT void sh_ffi_kinesis_recv_close(sh_kinesis_recv_t *r)
{
    if (r == NULL)
        return;
    if (r->sched)
        sh_sched_input_set_pause(r->sched, r->input, NULL, NULL);
    r->sched = NULL;
    r->closing = 1;
    sh_curl_uv_close(r->http);
    r->http = NULL;
    uv_timer_stop(&r->tick);
    uv_close((uv_handle_t *) &r->tick, on_closed);
}

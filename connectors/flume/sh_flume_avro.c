/* sh_flume_avro.c: Avro as the Flume protocols use it: the binary encoding of longs, strings,
 * maps and the events (by hand: the hot path), the two protocols' texts and MD5 hashes, and
 * the Avro RPC handshake records (read by hand, so untrusted bytes stay off Avro C; written
 * through Avro C). */
#include "sh_flume.h"
#include "sh_common.h"

#include <avro.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* The protocols exactly as python3-avro renders them (str(avro.protocol.parse(...)), see
 * scripts/peers/flume_avro.py): Avro implementations hash that text, so a client built with
 * python3-avro, or this host, finds the hashes equal and the handshake matches BOTH. */
static sh_flume_proto_t source_proto = {
    "AvroSourceProtocol",
    "{\"protocol\": \"AvroSourceProtocol\", \"namespace\": \"org.apache.flume.source.avro\", \"types\": [{\"type\": \"enum\", \"name\": \"Status\", \"symbols\": [\"OK\", \"FAILED\", \"UNKNOWN\"]}, {\"type\": \"record\", \"name\": \"AvroFlumeEvent\", \"fields\": [{\"type\": {\"type\": \"map\", \"values\": \"string\"}, \"name\": \"headers\"}, {\"type\": \"bytes\", \"name\": \"body\"}]}], \"messages\": {\"append\": {\"request\": [{\"type\": \"AvroFlumeEvent\", \"name\": \"event\"}], \"response\": \"Status\", \"errors\": []}, \"appendBatch\": {\"request\": [{\"type\": {\"type\": \"array\", \"items\": \"AvroFlumeEvent\"}, \"name\": \"events\"}], \"response\": \"Status\", \"errors\": []}}}",
    {0}
};
static sh_flume_proto_t sink_proto = {
    "SparkFlumeProtocol",
    "{\"protocol\": \"SparkFlumeProtocol\", \"namespace\": \"org.apache.spark.streaming.flume.sink\", \"types\": [{\"type\": \"record\", \"name\": \"SparkSinkEvent\", \"fields\": [{\"type\": {\"type\": \"map\", \"values\": \"string\"}, \"name\": \"headers\"}, {\"type\": \"bytes\", \"name\": \"body\"}]}, {\"type\": \"record\", \"name\": \"EventBatch\", \"fields\": [{\"type\": \"string\", \"name\": \"errorMsg\", \"default\": \"\"}, {\"type\": \"string\", \"name\": \"sequenceNumber\"}, {\"type\": {\"type\": \"array\", \"items\": \"SparkSinkEvent\"}, \"name\": \"events\"}]}], \"messages\": {\"getEventBatch\": {\"request\": [{\"type\": \"int\", \"name\": \"n\"}], \"response\": \"EventBatch\", \"errors\": []}, \"ack\": {\"request\": [{\"type\": \"string\", \"name\": \"sequenceNumber\"}], \"response\": \"null\", \"errors\": []}, \"nack\": {\"request\": [{\"type\": \"string\", \"name\": \"sequenceNumber\"}], \"response\": \"null\", \"errors\": []}}}",
    {0}
};

static const char HANDSHAKE_REQUEST_JSON[] =
    "{\"type\":\"record\",\"name\":\"HandshakeRequest\",\"namespace\":\"org.apache.avro.ipc\","
    "\"fields\":[{\"name\":\"clientHash\",\"type\":{\"type\":\"fixed\",\"name\":\"MD5\",\"size\":16}},"
    "{\"name\":\"clientProtocol\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"serverHash\",\"type\":\"MD5\"},"
    "{\"name\":\"meta\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"bytes\"}]}]}";
static const char HANDSHAKE_RESPONSE_JSON[] =
    "{\"type\":\"record\",\"name\":\"HandshakeResponse\",\"namespace\":\"org.apache.avro.ipc\","
    "\"fields\":[{\"name\":\"match\",\"type\":{\"type\":\"enum\",\"name\":\"HandshakeMatch\","
    "\"symbols\":[\"BOTH\",\"CLIENT\",\"NONE\"]}},"
    "{\"name\":\"serverProtocol\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"serverHash\",\"type\":[\"null\",{\"type\":\"fixed\",\"name\":\"MD5\",\"size\":16}]},"
    "{\"name\":\"meta\",\"type\":[\"null\",{\"type\":\"map\",\"values\":\"bytes\"}]}]}";

static pthread_once_t once = PTHREAD_ONCE_INIT;
static avro_value_iface_t *hs_request_class, *hs_response_class;

static void md5_of(const char *text, uint8_t out[16])
{
    unsigned int n = 16;

    EVP_Digest(text, strlen(text), out, &n, EVP_md5(), NULL);
}

static avro_value_iface_t *class_of(const char *json)
{
    avro_schema_t schema;
    avro_value_iface_t *c;

    if (avro_schema_from_json_length(json, strlen(json), &schema))
        return NULL;
    c = avro_generic_class_from_schema(schema);
    avro_schema_decref(schema);  /* the class keeps its own reference */
    return c;
}

static void init_once(void)
{
    md5_of(source_proto.json, source_proto.md5);
    md5_of(sink_proto.json, sink_proto.md5);
    hs_request_class = class_of(HANDSHAKE_REQUEST_JSON);
    hs_response_class = class_of(HANDSHAKE_RESPONSE_JSON);
}

const sh_flume_proto_t *sh_flume_source_protocol(void)
{
    pthread_once(&once, init_once);
    return &source_proto;
}

const sh_flume_proto_t *sh_flume_sink_protocol(void)
{
    pthread_once(&once, init_once);
    return &sink_proto;
}

/* -- Binary encoding ------------------------------------------------------------------------ */

int64_t sh_avro_get_long(sh_avro_in_t *in)
{
    uint64_t v = 0;
    int shift = 0;

    while (in->err == NULL) {
        uint8_t c;

        if (in->p >= in->end) {
            in->err = "truncated message";
            break;
        }
        c = *in->p++;
        if (shift == 63 && (c & 0x7e)) {  /* a 10th byte holds one bit at most */
            in->err = "malformed varint";
            break;
        }
        v |= (uint64_t) (c & 0x7f) << shift;
        if (!(c & 0x80))
            return (int64_t) (v >> 1) ^ -(int64_t) (v & 1);
        shift += 7;
        if (shift > 63)
            in->err = "malformed varint";
    }
    return 0;
}

const uint8_t *sh_avro_get_bytes(sh_avro_in_t *in, size_t *len)
{
    int64_t n = sh_avro_get_long(in);
    const uint8_t *p = in->p;

    *len = 0;
    if (in->err)
        return NULL;
    if (n < 0 || n > in->end - in->p) {
        in->err = n < 0 ? "negative length" : "truncated message";
        return NULL;
    }
    in->p += n;
    *len = (size_t) n;
    return p;
}

/* An array's or map's next block count (a negative count is followed by the block's byte size). */
static int64_t block_count(sh_avro_in_t *in)
{
    int64_t n = sh_avro_get_long(in);

    if (n < 0) {
        if (n == INT64_MIN) {
            in->err = "malformed block count";
            return 0;
        }
        n = -n;
        (void) sh_avro_get_long(in);
    }
    /* Every item takes at least one byte: a count beyond what is left is malformed. */
    if (in->err == NULL && n > in->end - in->p) {
        in->err = "block count beyond the message";
        return 0;
    }
    return in->err ? 0 : n;
}

void sh_avro_skip_map(sh_avro_in_t *in)
{
    int64_t n;
    size_t len;

    while ((n = block_count(in)) > 0)
        while (n-- > 0 && in->err == NULL) {
            (void) sh_avro_get_bytes(in, &len);
            (void) sh_avro_get_bytes(in, &len);
        }
}

void sh_avro_put_long(sh_buf_t *b, int64_t v)
{
    uint64_t z = ((uint64_t) v << 1) ^ (uint64_t) (v >> 63);
    char tmp[10];
    size_t n = 0;

    while (z >= 0x80) {
        tmp[n++] = (char) (z | 0x80);
        z >>= 7;
    }
    tmp[n++] = (char) z;
    sh_buf_add(b, tmp, n);
}

void sh_avro_put_bytes(sh_buf_t *b, const void *p, size_t len)
{
    sh_avro_put_long(b, (int64_t) len);
    sh_buf_add(b, p, len);
}

static void put_u32(sh_buf_t *b, size_t v)
{
    uint32_t u = (uint32_t) v;

    sh_buf_add(b, (const char *) &u, 4);
}

/* A string or bytes read (NULL after an error) into out. */
static void add_bytes(sh_buf_t *out, const uint8_t *p, size_t len)
{
    if (p != NULL && len > 0)
        sh_buf_add(out, (const char *) p, len);
}

/* One event {headers: map<string>, body: bytes} into out, in the SH_BLOB_FLUME layout. */
static void get_event(sh_avro_in_t *in, sh_buf_t *out)
{
    size_t at = out->len, nheaders = 0, len;
    const uint8_t *p;
    int64_t n;

    put_u32(out, 0);  /* the header count, set below */
    while ((n = block_count(in)) > 0)
        for (; n > 0 && in->err == NULL; n--) {
            p = sh_avro_get_bytes(in, &len);
            put_u32(out, len);
            add_bytes(out, p, len);
            p = sh_avro_get_bytes(in, &len);
            put_u32(out, len);
            add_bytes(out, p, len);
            nheaders++;
        }
    p = sh_avro_get_bytes(in, &len);
    put_u32(out, len);
    add_bytes(out, p, len);
    if (!out->oom) {
        uint32_t u = (uint32_t) nheaders;
        memcpy(out->data + at, &u, 4);
    }
}

long sh_flume_get_events(sh_avro_in_t *in, int array, sh_buf_t *out)
{
    long count = 0;
    int64_t n;

    if (!array) {
        get_event(in, out);
        count = 1;
    } else {
        while ((n = block_count(in)) > 0)
            for (; n > 0 && in->err == NULL; n--, count++) {
                if (count >= SH_FLUME_MAX_EVENTS) {
                    in->err = "more events in one request than the limit of " SH_FLUME_MAX_EVENTS_TEXT;
                    break;
                }
                get_event(in, out);
            }
    }
    if (in->err == NULL && out->oom)
        in->err = "out of memory";
    return in->err ? -1 : count;
}

/* -- The handshake ------------------------------------------------------------------------ */

static void write_datum(avro_value_t *v, sh_buf_t *out)
{
    size_t size = 0;
    char *tmp;
    avro_writer_t w;

    if (avro_value_sizeof(v, &size) || (tmp = sh_malloc(size)) == NULL) {
        out->oom = 1;
        return;
    }
    w = avro_writer_memory(tmp, (int64_t) size);
    if (avro_value_write(w, v) == 0)
        sh_buf_add(out, tmp, size);
    else
        out->oom = 1;
    avro_writer_free(w);
    sh_free(tmp);
}

static int known_hash(const sh_flume_known_t *k, const uint8_t *h)
{
    int i;

    for (i = 0; i < k->n; i++)
        if (memcmp(k->hashes[i], h, 16) == 0)
            return 1;
    return 0;
}

/* A union {null, X}'s branch: 1 when X follows, 0 for null (in->err set on anything else). */
static int get_optional(sh_avro_in_t *in)
{
    int64_t b = sh_avro_get_long(in);

    if (in->err == NULL && b != 0 && b != 1)
        in->err = "malformed union";
    return in->err == NULL && b == 1;
}

/* An MD5 (fixed, 16 bytes): a pointer into the input, or NULL with in->err. */
static const uint8_t *get_md5(sh_avro_in_t *in)
{
    const uint8_t *p = in->p;

    if (in->err)
        return NULL;
    if (in->end - in->p < 16) {
        in->err = "truncated message";
        return NULL;
    }
    in->p += 16;
    return p;
}

/* Whether a protocol's JSON text declares "protocol": "<name>" (spaces allowed around ':'). */
static int declares_protocol(const uint8_t *text, size_t len, const char *name)
{
    const char *key = "\"protocol\"";
    size_t klen = strlen(key), nlen = strlen(name), i;

    for (i = 0; i + klen <= len; i++) {
        size_t j = i + klen;

        if (memcmp(text + i, key, klen) != 0)
            continue;
        while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
            j++;
        if (j >= len || text[j++] != ':')
            continue;
        while (j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r'))
            j++;
        if (len - j >= nlen + 2 && text[j] == '"' && memcmp(text + j + 1, name, nlen) == 0 &&
            text[j + 1 + nlen] == '"')
            return 1;
    }
    return 0;
}

int sh_flume_handshake_serve(sh_avro_in_t *in, const sh_flume_proto_t *local,
                             sh_flume_known_t *known, sh_buf_t *out, const char **err)
{
    avro_value_t field, branch, resp;
    const uint8_t *client_hash, *server_hash, *text = NULL;
    size_t text_len = 0;
    int remote, match;

    pthread_once(&once, init_once);
    /* HandshakeRequest {clientHash: MD5, clientProtocol: union {null, string}, serverHash: MD5,
     * meta: union {null, map<bytes>}}, read by hand: untrusted bytes stay off Avro C. */
    client_hash = get_md5(in);
    if (get_optional(in))
        text = sh_avro_get_bytes(in, &text_len);
    server_hash = get_md5(in);
    if (get_optional(in))
        sh_avro_skip_map(in);
    if (in->err) {
        *err = "malformed handshake request";
        return -1;
    }
    remote = memcmp(client_hash, local->md5, 16) == 0 || known_hash(known, client_hash);
    if (!remote && text && declares_protocol(text, text_len, local->name)) {
        /* An unknown client protocol that the client sent along and that names ours is taken
         * (its messages are read with our schemas, as they are the same protocol). */
        remote = 1;
        memcpy(known->hashes[known->next], client_hash, 16);
        known->next = (known->next + 1) % 16;
        if (known->n < 16)
            known->n++;
    }
    if (!remote)
        match = SH_MATCH_NONE;
    else
        match = memcmp(server_hash, local->md5, 16) == 0 ? SH_MATCH_BOTH : SH_MATCH_CLIENT;

    if (avro_generic_value_new(hs_response_class, &resp)) {
        *err = "out of memory";
        return -1;
    }
    avro_value_get_by_name(&resp, "match", &field, NULL);
    avro_value_set_enum(&field, match);
    avro_value_get_by_name(&resp, "serverProtocol", &field, NULL);
    if (match == SH_MATCH_BOTH) {
        avro_value_set_branch(&field, 0, &branch);
        avro_value_set_null(&branch);
    } else {
        avro_value_set_branch(&field, 1, &branch);
        avro_value_set_string(&branch, local->json);
    }
    avro_value_get_by_name(&resp, "serverHash", &field, NULL);
    if (match == SH_MATCH_BOTH) {
        avro_value_set_branch(&field, 0, &branch);
        avro_value_set_null(&branch);
    } else {
        avro_value_set_branch(&field, 1, &branch);
        avro_value_set_fixed(&branch, (void *) local->md5, 16);
    }
    avro_value_get_by_name(&resp, "meta", &field, NULL);
    avro_value_set_branch(&field, 0, &branch);
    avro_value_set_null(&branch);
    write_datum(&resp, out);
    avro_value_decref(&resp);
    return match;
}

void sh_flume_handshake_request(const sh_flume_proto_t *local, int send_protocol, sh_buf_t *out)
{
    avro_value_t req, field, branch;

    pthread_once(&once, init_once);
    if (hs_request_class == NULL || avro_generic_value_new(hs_request_class, &req)) {
        out->oom = 1;
        return;
    }
    avro_value_get_by_name(&req, "clientHash", &field, NULL);
    avro_value_set_fixed(&field, (void *) local->md5, 16);
    avro_value_get_by_name(&req, "clientProtocol", &field, NULL);
    if (send_protocol) {
        avro_value_set_branch(&field, 1, &branch);
        avro_value_set_string(&branch, local->json);
    } else {
        avro_value_set_branch(&field, 0, &branch);
        avro_value_set_null(&branch);
    }
    avro_value_get_by_name(&req, "serverHash", &field, NULL);
    avro_value_set_fixed(&field, (void *) local->md5, 16);
    avro_value_get_by_name(&req, "meta", &field, NULL);
    avro_value_set_branch(&field, 0, &branch);
    avro_value_set_null(&branch);
    write_datum(&req, out);
    avro_value_decref(&req);
}

int sh_flume_handshake_response(sh_avro_in_t *in, const char **err)
{
    /* HandshakeResponse {match: enum (BOTH, CLIENT, NONE), serverProtocol: union {null,
     * string}, serverHash: union {null, MD5}, meta: union {null, map<bytes>}}. */
    int64_t match = sh_avro_get_long(in);
    size_t len;

    if (in->err == NULL && (match < SH_MATCH_BOTH || match > SH_MATCH_NONE))
        in->err = "unknown match";
    if (get_optional(in))
        sh_avro_get_bytes(in, &len);
    if (get_optional(in))
        get_md5(in);
    if (get_optional(in))
        sh_avro_skip_map(in);
    if (in->err) {
        *err = "malformed handshake response";
        return -1;
    }
    return (int) match;
}

/* gen_corpus.c - owns the word-count benchmark corpus: a deterministic text file of
 * lines of 8-12 space-separated pseudo-words drawn from a Zipf distribution over a
 * generated vocabulary (lowercase ascii, lengths 2-12). Same arguments, same bytes.
 *
 * usage: gen_corpus OUT_PATH SIZE_MB VOCAB_SIZE SEED [ZIPF_EXPONENT]
 * Writes OUT_PATH.tmp, renames it to OUT_PATH, prints "bytes=.. lines=.. words=.." to stdout.
 * SIZE_MB is in MiB; the file stops at the first line end at or past that size. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

/* splitmix64 */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t rng_below(uint32_t n)
{
    return (uint32_t)(((rng_next() >> 32) * (uint64_t)n) >> 32);
}

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* vocabulary: words stored in one arena, deduplicated through an open-addressing set */
typedef struct {
    char *arena;
    uint32_t *off;    /* word i starts at arena + off[i] */
    uint8_t *len;
    uint32_t *set;    /* word index + 1, 0 = empty */
    size_t set_mask;
    size_t n;
} vocab_t;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* adds the candidate at arena + off[v->n]; returns 0 when it is already present */
static int vocab_add(vocab_t *v, size_t len)
{
    const char *w = v->arena + v->off[v->n];
    size_t i = hash_bytes(w, len) & v->set_mask;
    while (v->set[i] != 0) {
        uint32_t k = v->set[i] - 1;
        if (v->len[k] == len && memcmp(v->arena + v->off[k], w, len) == 0)
            return 0;
        i = (i + 1) & v->set_mask;
    }
    v->set[i] = (uint32_t)v->n + 1;
    v->len[v->n] = (uint8_t)len;
    v->off[v->n + 1] = v->off[v->n] + (uint32_t)len;
    v->n++;
    return 1;
}

/* Word of rank r (0 = most frequent): frequent words are short, rare ones long,
 * as in natural text. Lengths run 2..12; a collision retries, then lengthens. */
static void vocab_build(vocab_t *v, size_t size)
{
    size_t cap = 1;
    while (cap < size * 2)
        cap <<= 1;
    v->arena = xmalloc(size * 12 + 16);
    v->off = xmalloc((size + 1) * sizeof *v->off);
    v->len = xmalloc(size);
    v->set = xmalloc(cap * sizeof *v->set);
    v->set_mask = cap - 1;
    v->n = 0;
    for (size_t r = 0; r < size; r++) {
        unsigned lo = 2 + (unsigned)log10((double)r + 1.0);
        if (lo > 12)
            lo = 12;
        unsigned hi = lo + 5 > 12 ? 12 : lo + 5;
        for (unsigned tries = 0;; tries++) {
            if (tries > 0 && tries % 64 == 0 && lo < 12) {
                lo++;
                if (hi < 12)
                    hi++;
            }
            if (tries > 100000) {
                errno = 0;
                die("vocabulary too large for word lengths 2-12");
            }
            size_t len = lo + rng_below(hi - lo + 1);
            char *w = v->arena + v->off[v->n];
            for (size_t i = 0; i < len; i++)
                w[i] = (char)('a' + rng_below(26));
            if (vocab_add(v, len))
                break;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: gen_corpus OUT_PATH SIZE_MB VOCAB_SIZE SEED [ZIPF_EXPONENT]\n");
        return 2;
    }
    const char *path = argv[1];
    double mb = strtod(argv[2], NULL);
    long vsize = strtol(argv[3], NULL, 10);
    rng_state = strtoull(argv[4], NULL, 0);
    double s = argc == 6 ? strtod(argv[5], NULL) : 1.0;
    if (!(mb > 0) || vsize < 1 || vsize > 50000000) {
        fprintf(stderr, "gen_corpus: bad SIZE_MB or VOCAB_SIZE\n");
        return 2;
    }
    uint64_t target = (uint64_t)(mb * 1048576.0);

    vocab_t v;
    vocab_build(&v, (size_t)vsize);

    /* Zipf CDF over ranks 1..N: weight 1 / rank^s */
    double *cdf = xmalloc((size_t)vsize * sizeof *cdf);
    double acc = 0;
    for (long r = 0; r < vsize; r++) {
        acc += 1.0 / pow((double)(r + 1), s);
        cdf[r] = acc;
    }

    size_t plen = strlen(path);
    char *tmp = xmalloc(plen + 8);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    FILE *out = fopen(tmp, "wb");
    if (out == NULL)
        die(tmp);
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);

    uint64_t bytes = 0, lines = 0, words = 0;
    char line[13 * 12 + 2];
    while (bytes < target) {
        unsigned nw = 8 + rng_below(5), p = 0;
        for (unsigned i = 0; i < nw; i++) {
            double u = rng_unit() * acc;
            size_t lo = 0, hi = (size_t)vsize - 1; /* first rank with cdf > u */
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (cdf[mid] > u)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (i > 0)
                line[p++] = ' ';
            memcpy(line + p, v.arena + v.off[lo], v.len[lo]);
            p += v.len[lo];
        }
        line[p++] = '\n';
        if (fwrite(line, 1, p, out) != p)
            die(tmp);
        bytes += p;
        lines++;
        words += nw;
    }
    if (fclose(out) != 0)
        die(tmp);
    if (rename(tmp, path) != 0)
        die(path);
    printf("bytes=%llu lines=%llu words=%llu vocab=%ld seed=%s zipf=%g\n",
           (unsigned long long)bytes, (unsigned long long)lines,
           (unsigned long long)words, vsize, argv[4], s);
    return 0;
}

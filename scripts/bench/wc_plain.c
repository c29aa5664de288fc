/* wc_plain.c - owns the plain-C word-count baseline: streams a file in 1 MiB chunks,
 * splits on whitespace (the bytes Lua's %s matches), counts words in an open-addressing
 * hash table, prints "total=.. distinct=.. top_count=.. top_word=..".
 *
 * usage: wc_plain FILE */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    uint64_t count;     /* 0 = empty slot */
    uint32_t off, len;  /* word bytes in the arena */
} entry_t;

static entry_t *tab;
static size_t tab_mask, tab_used;
static char *arena;
static size_t arena_len, arena_cap;

static void oom(void)
{
    fprintf(stderr, "wc_plain: out of memory\n");
    exit(1);
}

static inline int is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static inline uint64_t hash_word(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ^ (h >> 32);
}

static void grow(void)
{
    size_t ncap = (tab_mask + 1) * 2;
    entry_t *nt = calloc(ncap, sizeof *nt);
    if (nt == NULL)
        oom();
    for (size_t i = 0; i <= tab_mask; i++) {
        if (tab[i].count == 0)
            continue;
        size_t j = tab[i].hash & (ncap - 1);
        while (nt[j].count != 0)
            j = (j + 1) & (ncap - 1);
        nt[j] = tab[i];
    }
    free(tab);
    tab = nt;
    tab_mask = ncap - 1;
}

static inline void add_word(const char *w, size_t len)
{
    uint64_t h = hash_word(w, len);
    size_t i = h & tab_mask;
    for (;;) {
        entry_t *e = &tab[i];
        if (e->count == 0)
            break;
        if (e->hash == h && e->len == len && memcmp(arena + e->off, w, len) == 0) {
            e->count++;
            return;
        }
        i = (i + 1) & tab_mask;
    }
    if (arena_len + len > arena_cap) {
        while (arena_len + len > arena_cap)
            arena_cap *= 2;
        arena = realloc(arena, arena_cap);
        if (arena == NULL)
            oom();
    }
    memcpy(arena + arena_len, w, len);
    tab[i] = (entry_t){ h, 1, (uint32_t)arena_len, (uint32_t)len };
    arena_len += len;
    if (++tab_used * 2 > tab_mask + 1)
        grow();
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: wc_plain FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        fprintf(stderr, "wc_plain: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    tab_mask = (1u << 16) - 1;
    tab = calloc(tab_mask + 1, sizeof *tab);
    arena_cap = 1 << 20;
    arena = malloc(arena_cap);
    size_t cap = 1 << 20, keep = 0;
    char *buf = malloc(cap);
    if (tab == NULL || arena == NULL || buf == NULL)
        oom();

    for (;;) {
        if (keep == cap) { /* a single word larger than the buffer */
            cap *= 2;
            if ((buf = realloc(buf, cap)) == NULL)
                oom();
        }
        size_t n = fread(buf + keep, 1, cap - keep, f);
        if (n == 0 && ferror(f)) {
            fprintf(stderr, "wc_plain: %s: read error\n", argv[1]);
            return 1;
        }
        int eof = n == 0;
        size_t len = keep + n, pos = 0;
        keep = 0;
        while (pos < len) {
            if (is_space((unsigned char)buf[pos])) {
                pos++;
                continue;
            }
            size_t start = pos;
            while (pos < len && !is_space((unsigned char)buf[pos]))
                pos++;
            if (pos == len && !eof) { /* word may continue in the next chunk */
                keep = len - start;
                memmove(buf, buf + start, keep);
                break;
            }
            add_word(buf + start, pos - start);
        }
        if (eof)
            break;
    }
    fclose(f);

    uint64_t total = 0;
    const entry_t *top = NULL;
    for (size_t i = 0; i <= tab_mask; i++) {
        total += tab[i].count;
        if (tab[i].count != 0 && (top == NULL || tab[i].count > top->count))
            top = &tab[i];
    }
    printf("total=%llu distinct=%llu top_count=%llu top_word=%.*s\n",
           (unsigned long long)total, (unsigned long long)tab_used,
           (unsigned long long)(top ? top->count : 0),
           top ? (int)top->len : 0, top ? arena + top->off : "");
    return 0;
}

/* sh_ckpt_file.c: checkpoint files: atomic checksummed writes, verified reads, list and prune.
 * The format is described in sh_ckpt_file.h. */
#include "sh_ckpt_file.h"
#include "sh_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* -- Helpers ------------------------------------------------------------- */

/* A new string from a printf format, or NULL when out of memory. */
static char *fmt_new(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = sh_malloc((size_t) n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t) n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Sets *errmsg (when the caller wants one) from a printf format. A message that cannot be
 * allocated is left NULL: the code still tells the caller what happened. */
static void set_err(char **errmsg, const char *fmt, ...)
{
    va_list ap;
    char buf[8192];

    if (errmsg == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    *errmsg = sh__strdup(buf);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Writes all `len` bytes, retrying on EINTR and short writes. 0 or a negative errno; a write
 * that makes no progress counts as ENOSPC. */
static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len > (1u << 30) ? (1u << 30) : len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return SH__ERR(errno);
        if (w == 0)
            return SH__ERR(ENOSPC);
        p += w;
        len -= (size_t) w;
    }
    return 0;
}

/* Reads up to `len` bytes, retrying on EINTR and short reads; *got says how many came before
 * end of file. 0 or a negative errno. */
static int read_full(int fd, void *data, size_t len, size_t *got)
{
    char *p = data;

    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        ssize_t r = read(fd, p + *got, want > (1u << 30) ? (1u << 30) : want);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return SH__ERR(errno);
        if (r == 0)
            break;
        *got += (size_t) r;
    }
    return 0;
}

/* -- CRC-32C ------------------------------------------------------------- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* Fills the byte-at-a-time table for the reflected Castagnoli polynomial. */
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t sh__ckpt_crc32c(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (len--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* -- Write --------------------------------------------------------------- */

/* A failpoint for the crash tests: STREAMHOST_FAILPOINT=kill-mid-checkpoint-write:N kills the
 * process (SIGKILL) in the middle of the Nth checkpoint file this process writes, after half
 * its payload reached the temporary file. Read once; off unless set. */
static atomic_long kill_at_write = -1;
static atomic_long writes_started;
static pthread_once_t failpoint_once = PTHREAD_ONCE_INIT;

static void failpoint_init(void)
{
    const char *fp = getenv("STREAMHOST_FAILPOINT");
    const char *key = "kill-mid-checkpoint-write:";

    if (fp != NULL && strncmp(fp, key, strlen(key)) == 0)
        atomic_store(&kill_at_write, strtol(fp + strlen(key), NULL, 10));
}

/* Tells temporary files of one process apart. */
static atomic_ulong tmp_counter;

/* A name is one path component that a listing would not take for a temporary file. */
static int valid_name(const char *name)
{
    return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

/* fsyncs directory `dir` so that a rename in it survives a crash. 0 or a negative errno.
 * Some file systems cannot fsync a directory (EINVAL); there is nothing more to do then. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

    if (fd < 0)
        return SH__ERR(errno);
    if (fsync(fd) != 0 && errno != EINVAL)
        err = SH__ERR(errno);
    close(fd);
    return err;
}

int sh_ckpt_write(const char *dir, const char *name, const void *data, size_t len,
                  char **errmsg)
{
    sh_ckpt_piece_t piece = { data, len };

    return sh_ckpt_writev(dir, name, &piece, 1, errmsg);
}

int sh_ckpt_writev(const char *dir, const char *name, const sh_ckpt_piece_t *pieces,
                   size_t npieces, char **errmsg)
{
    uint64_t len = 0;
    uint32_t crc = 0;
    unsigned char hdr[SH_CKPT_HEADER_SIZE];
    char *path = NULL, *tmp = NULL;
    const char *what;
    int fd = -1, err;

    if (errmsg)
        *errmsg = NULL;
    if (!valid_name(name)) {
        set_err(errmsg, "cannot write checkpoint %s/%s: the name must be one path component "
                        "not starting with '.'", dir, name);
        return SH_EINVAL;
    }
    path = fmt_new("%s/%s", dir, name);
    tmp = fmt_new("%s/.%s.tmp-%ld-%lu", dir, name, (long) getpid(),
                  (unsigned long) atomic_fetch_add(&tmp_counter, 1));
    if (path == NULL || tmp == NULL) {
        set_err(errmsg, "cannot write checkpoint %s/%s: out of memory", dir, name);
        err = SH_ENOMEM;
        goto out;
    }

    for (size_t i = 0; i < npieces; i++) {
        len += pieces[i].len;
        crc = sh__ckpt_crc32c(crc, pieces[i].data, pieces[i].len);
    }
    memcpy(hdr, SH_CKPT_MAGIC, 4);
    put_u32(hdr + 4, SH_CKPT_VERSION);
    put_u64(hdr + 8, len);
    put_u32(hdr + 16, crc);
    put_u32(hdr + 20, sh__ckpt_crc32c(0, hdr, 20));

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = SH__ERR(errno);
        set_err(errmsg, "cannot write checkpoint %s: cannot create %s: %s", path, tmp,
                strerror(-err));
        goto out;  /* nothing was created, so nothing to remove */
    }
    what = "write";
    if ((err = write_all(fd, hdr, sizeof hdr)) != 0)
        goto fail_unlink;
    pthread_once(&failpoint_once, failpoint_init);
    if (atomic_fetch_add(&writes_started, 1) + 1 == atomic_load(&kill_at_write)) {
        if (npieces > 0)
            (void) write_all(fd, pieces[0].data, pieces[0].len / 2);
        raise(SIGKILL);
    }
    for (size_t i = 0; i < npieces; i++)
        if ((err = write_all(fd, pieces[i].data, pieces[i].len)) != 0)
            goto fail_unlink;
    what = "fsync";
    if (fsync(fd) != 0) {
        err = SH__ERR(errno);
        goto fail_unlink;
    }
    what = "close";
    err = close(fd) != 0 ? SH__ERR(errno) : 0;
    fd = -1;  /* closed even when close() fails: never close it twice */
    if (err)
        goto fail_unlink;
    what = "rename";
    if (rename(tmp, path) != 0) {
        err = SH__ERR(errno);
        goto fail_unlink;
    }
    /* From here `name` is the new file; a failure only means it may not survive a crash. */
    if ((err = sync_dir(dir)) != 0)
        set_err(errmsg, "checkpoint %s was written but fsync of directory %s failed, so it "
                        "may not survive a crash: %s", path, dir, strerror(-err));
    goto out;

fail_unlink:
    set_err(errmsg, "cannot write checkpoint %s: %s of %s failed: %s", path, what, tmp,
            strerror(-err));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    sh_free(tmp);
    sh_free(path);
    return err;
}

/* -- Read ---------------------------------------------------------------- */

int sh_ckpt_read(const char *path, char **data, size_t *len, char **errmsg)
{
    unsigned char hdr[SH_CKPT_HEADER_SIZE];
    struct stat st;
    uint64_t want, have;
    uint32_t version;
    size_t got;
    char *buf = NULL;
    int fd, err;

    *data = NULL;
    *len = 0;
    if (errmsg)
        *errmsg = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = SH__ERR(errno);
        set_err(errmsg, "cannot read checkpoint %s: %s", path, strerror(-err));
        return err;
    }
    if (fstat(fd, &st) != 0) {
        err = SH__ERR(errno);
        set_err(errmsg, "cannot read checkpoint %s: %s", path, strerror(-err));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = SH_EINVAL;
        set_err(errmsg, "cannot read checkpoint %s: not a regular file", path);
        goto out;
    }
    if ((err = read_full(fd, hdr, sizeof hdr, &got)) != 0) {
        set_err(errmsg, "cannot read checkpoint %s: %s", path, strerror(-err));
        goto out;
    }
    err = SH_CKPT_ECORRUPT;
    if (got < 4 || memcmp(hdr, SH_CKPT_MAGIC, 4) != 0) {
        set_err(errmsg, "checkpoint %s: not a checkpoint file (bad magic)", path);
        goto out;
    }
    if (got < sizeof hdr) {
        set_err(errmsg, "checkpoint %s: truncated: %zu of %d header bytes", path, got,
                SH_CKPT_HEADER_SIZE);
        goto out;
    }
    version = get_u32(hdr + 4);
    if (version != SH_CKPT_VERSION) {
        err = SH_CKPT_EVERSION;
        set_err(errmsg, "checkpoint %s: format version %lu is not supported (this host reads "
                        "version %d)", path, (unsigned long) version, SH_CKPT_VERSION);
        goto out;
    }
    if (get_u32(hdr + 20) != sh__ckpt_crc32c(0, hdr, 20)) {
        set_err(errmsg, "checkpoint %s: header checksum mismatch", path);
        goto out;
    }
    want = get_u64(hdr + 8);
    /* The file may have grown since the fstat; never let the subtraction wrap. */
    have = (uint64_t) st.st_size > sizeof hdr ? (uint64_t) st.st_size - sizeof hdr : 0;
    if (have < want) {
        set_err(errmsg, "checkpoint %s: truncated: %llu of %llu payload bytes", path,
                (unsigned long long) have, (unsigned long long) want);
        goto out;
    }
    if (have > want) {
        set_err(errmsg, "checkpoint %s: %llu bytes after the %llu payload bytes", path,
                (unsigned long long) (have - want), (unsigned long long) want);
        goto out;
    }
    if (want >= SIZE_MAX || (buf = sh_malloc((size_t) want + 1)) == NULL) {
        err = SH_ENOMEM;
        set_err(errmsg, "cannot read checkpoint %s: out of memory for %llu bytes", path,
                (unsigned long long) want);
        goto out;
    }
    if ((err = read_full(fd, buf, (size_t) want, &got)) != 0) {
        set_err(errmsg, "cannot read checkpoint %s: %s", path, strerror(-err));
        goto out;
    }
    err = SH_CKPT_ECORRUPT;
    if (got < want) {  /* it shrank after the fstat */
        set_err(errmsg, "checkpoint %s: truncated: %zu of %llu payload bytes", path, got,
                (unsigned long long) want);
        goto out;
    }
    if (get_u32(hdr + 16) != sh__ckpt_crc32c(0, buf, (size_t) want)) {
        set_err(errmsg, "checkpoint %s: checksum mismatch", path);
        goto out;
    }
    buf[want] = '\0';
    *data = buf;
    *len = (size_t) want;
    buf = NULL;
    err = 0;
out:
    sh_free(buf);
    close(fd);
    return err;
}

/* -- List and prune ------------------------------------------------------ */

/* The digits after the prefix, leading zeros skipped, or NULL when `name` is not the prefix
 * followed by one or more digits and nothing else. */
static const char *number_of(const char *name, const char *prefix, size_t plen)
{
    const char *p;

    if (strncmp(name, prefix, plen) != 0 || name[plen] == '\0')
        return NULL;
    for (p = name + plen; *p; p++)
        if (*p < '0' || *p > '9')
            return NULL;
    p = name + plen;
    while (p[0] == '0' && p[1] != '\0')
        p++;
    return p;
}

/* A listed name and the digits of its number (leading zeros skipped), for sorting. */
struct entry {
    const char *digits;
    char *name;
};

/* Newest first: larger numbers first, compared as digit strings so any length works; equal
 * numbers ("7", "007") by name, for a stable order. */
static int cmp_newest(const void *a, const void *b)
{
    const struct entry *ea = a, *eb = b;
    size_t la = strlen(ea->digits), lb = strlen(eb->digits);
    int c;

    if (la != lb)
        return la < lb ? 1 : -1;
    c = strcmp(ea->digits, eb->digits);
    if (c != 0)
        return -c;
    return strcmp(ea->name, eb->name);
}

/* Sorts the `n` names of `list` (all numbered checkpoints of `prefix`) newest first.
 * 0 or SH_ENOMEM (then `list` is unchanged). */
static int sort_newest(char **list, size_t n, const char *prefix, size_t plen)
{
    struct entry *ents;
    size_t i;

    if (n < 2)  /* list may be NULL, which qsort must not be given */
        return 0;
    ents = sh_malloc(n * sizeof(*ents));
    if (ents == NULL)
        return SH_ENOMEM;
    for (i = 0; i < n; i++) {
        ents[i].name = list[i];
        ents[i].digits = number_of(list[i], prefix, plen);
    }
    qsort(ents, n, sizeof(*ents), cmp_newest);
    for (i = 0; i < n; i++)
        list[i] = ents[i].name;
    sh_free(ents);
    return 0;
}

void sh_ckpt_names_free(char **names, size_t n)
{
    size_t i;

    if (names == NULL)
        return;
    for (i = 0; i < n; i++)
        sh_free(names[i]);
    sh_free(names);
}

int sh_ckpt_list(const char *dir, const char *prefix, char ***names, size_t *n, char **errmsg)
{
    size_t plen = strlen(prefix), cnt = 0, cap = 0;
    char **list = NULL;
    struct dirent *e;
    DIR *d;
    int err = 0;

    *names = NULL;
    *n = 0;
    if (errmsg)
        *errmsg = NULL;
    d = opendir(dir);
    if (d == NULL) {
        err = SH__ERR(errno);
        set_err(errmsg, "cannot list checkpoints in %s: %s", dir, strerror(-err));
        return err;
    }
    for (;;) {
        struct stat st;

        errno = 0;
        if ((e = readdir(d)) == NULL) {
            if (errno != 0) {
                err = SH__ERR(errno);
                set_err(errmsg, "cannot list checkpoints in %s: %s", dir, strerror(-err));
                goto fail;
            }
            break;
        }
        if (e->d_name[0] == '.' || number_of(e->d_name, prefix, plen) == NULL)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
            continue;  /* gone since readdir, or not a file: not a checkpoint either way */
        if (cnt == cap) {
            char **nl = sh_realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*nl));

            if (nl == NULL)
                goto fail_nomem;
            list = nl;
        }
        if ((list[cnt] = sh__strdup(e->d_name)) == NULL)
            goto fail_nomem;
        cnt++;
    }
    if (sort_newest(list, cnt, prefix, plen) != 0)
        goto fail_nomem;
    closedir(d);
    *names = list;
    *n = cnt;
    return 0;

fail_nomem:
    err = SH_ENOMEM;
    set_err(errmsg, "cannot list checkpoints in %s: out of memory", dir);
fail:
    closedir(d);
    sh_ckpt_names_free(list, cnt);
    return err;
}

int sh_ckpt_keep_newest(const char *dir, const char *prefix, size_t keep, char **errmsg)
{
    char **names, *path;
    size_t n, i;
    int err, first = 0;

    err = sh_ckpt_list(dir, prefix, &names, &n, errmsg);
    if (err)
        return err;
    for (i = keep; i < n; i++) {
        path = fmt_new("%s/%s", dir, names[i]);
        if (path == NULL)
            err = SH_ENOMEM;
        else if (unlink(path) != 0 && errno != ENOENT)
            err = SH__ERR(errno);
        else
            err = 0;
        if (err && first == 0) {
            first = err;
            set_err(errmsg, "cannot remove old checkpoint %s/%s: %s", dir, names[i],
                    strerror(-err));
        }
        sh_free(path);
    }
    sh_ckpt_names_free(names, n);
    return first;
}

/* -- Leftovers of killed writers ------------------------------------------- */

int sh_ckpt_remove_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        const char *tag = e->d_name[0] == '.' ? strstr(e->d_name, ".tmp-") : NULL;
        char *end;
        long pid;

        if (tag == NULL)
            continue;
        pid = strtol(tag + 5, &end, 10);
        if (end == tag + 5 || *end != '-' || pid <= 0 || pid == (long) getpid())
            continue;
        if (kill((pid_t) pid, 0) == 0 || errno != ESRCH)
            continue;  /* the writer may still be at it */
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

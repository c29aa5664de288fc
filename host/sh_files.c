/* sh_files.c: directory listing, path globbing and whole-file reads into blobs, for
 * textFileStream, binaryRecordsStream and SparkContext.textFile; and the durable directory
 * operations of outputs and checkpoints (create, fsync, replace). */
#include "sh_blob.h"
#include "sh_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SH_EXPORT __attribute__((visibility("default")))

static char *errorf(const char *what, const char *path, int e)
{
    char buf[8400];

    snprintf(buf, sizeof buf, "%s %s: %s", what, path, strerror(e));
    return sh__strdup(buf);
}

/* A file of a directory listing: its name and modification time. */
typedef struct {
    char *name;
    int64_t mtime_ms;
} entry_t;

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const entry_t *) a)->name, ((const entry_t *) b)->name);
}

/* The regular files of `dir` whose names do not start with '.', sorted by name, in a new
 * array *out of *n entries (free with free_entries). 0, or -1 with *errmsg set. */
static int list_entries(const char *dir, entry_t **out, size_t *n, char **errmsg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    entry_t *list = NULL;
    size_t cap = 0;
    char path[4096];

    *out = NULL;
    *n = 0;
    if (d == NULL) {
        *errmsg = errorf("cannot list directory", dir, errno);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            entry_t *nl = sh_realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*nl));
            if (nl == NULL)
                goto oom;
            list = nl;
        }
        if ((list[*n].name = sh__strdup(e->d_name)) == NULL)
            goto oom;
        list[*n].mtime_ms = (int64_t) st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
        (*n)++;
    }
    closedir(d);
    if (*n > 1)  /* list is NULL for an empty directory, which qsort must not be given */
        qsort(list, *n, sizeof(*list), cmp_entries);
    *out = list;
    return 0;
oom:
    closedir(d);
    for (size_t i = 0; i < *n; i++)
        sh_free(list[i].name);
    sh_free(list);
    *n = 0;
    *errmsg = sh__strdup("out of memory listing a directory");
    return -1;
}

static void free_entries(entry_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sh_free(list[i].name);
    sh_free(list);
}

/* Lists the regular files of `dir` whose names do not start with '.', sorted by name, as
 * NUL-terminated names back to back in *names (free with sh_ffi_free), *len bytes in all; with
 * `with_mtime`, each name is followed by its modification time in epoch milliseconds, in
 * decimal, NUL-terminated too. Returns the number of files, or -1 with *errmsg set (free with
 * sh_ffi_free). Any thread. */
SH_EXPORT int sh_ffi_dir_list(const char *dir, int with_mtime, char **names, size_t *len,
                              char **errmsg)
{
    entry_t *list;
    size_t n, total = 0, off = 0;
    char *p;

    *names = NULL;
    *len = 0;
    *errmsg = NULL;
    if (list_entries(dir, &list, &n, errmsg) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        total += strlen(list[i].name) + 1 + (with_mtime ? 24 : 0);
    if ((p = sh_malloc(total)) == NULL) {
        free_entries(list, n);
        *errmsg = sh__strdup("out of memory listing a directory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list[i].name) + 1;

        memcpy(p + off, list[i].name, l);
        off += l;
        if (with_mtime)
            off += (size_t) snprintf(p + off, 24, "%lld", (long long) list[i].mtime_ms) + 1;
    }
    free_entries(list, n);
    *names = p;
    *len = off;
    return (int) n;
}

/* What `path` names: 2 a directory, 1 anything else that exists, 0 nothing (or nothing this
 * process may see). */
SH_EXPORT int sh_ffi_path_kind(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return 0;
    return S_ISDIR(st.st_mode) ? 2 : 1;
}

/* The paths that match the shell pattern `pattern` (`*`, `?`, `[...]`, `{a,b}`; a leading dot
 * only matches a dot), sorted, as NUL-terminated paths back to back in *names (free with
 * sh_ffi_free), *len bytes in all. Returns their number (0 when nothing matches), or -1 with
 * *errmsg set (free with sh_ffi_free). */
SH_EXPORT int sh_ffi_glob(const char *pattern, char **names, size_t *len, char **errmsg)
{
    glob_t g;
    int rc;

    *names = NULL;
    *len = 0;
    *errmsg = NULL;
    memset(&g, 0, sizeof g);
    rc = glob(pattern, GLOB_BRACE, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        globfree(&g);
        return 0;
    }
    if (rc != 0) {
        globfree(&g);
        *errmsg = rc == GLOB_NOSPACE ? sh__strdup("out of memory matching a path pattern")
                                     : errorf("cannot read the directories of", pattern, errno);
        return -1;
    }
    if (sh__pack_names(g.gl_pathv, g.gl_pathc, names, len) != 0) {
        globfree(&g);
        *errmsg = sh__strdup("out of memory matching a path pattern");
        return -1;
    }
    rc = (int) g.gl_pathc;
    globfree(&g);
    return rc;
}

/* Reads the whole file into a new blob (one reference, the caller's). */
static sh_blob_t *read_all(const char *path, int kind, char **errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    sh_blob_t *b = NULL;
    ssize_t r;

    if (fd < 0) {
        *errmsg = errorf("cannot open", path, errno);
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        *errmsg = errorf("cannot stat", path, errno);
        goto out;
    }
    b = sh_blob_new(kind, (size_t) st.st_size + 1);
    if (b == NULL) {
        *errmsg = sh__strdup("out of memory reading a file");
        goto out;
    }
    for (;;) {
        if (b->len == b->cap) {
            char c;
            /* The file grew while we read it: append what is there now. */
            if (read(fd, &c, 1) != 1)
                break;
            if (sh_blob_append(&b, &c, 1)) {
                *errmsg = sh__strdup("out of memory reading a file");
                goto fail;
            }
            continue;
        }
        r = read(fd, b->data + b->len, b->cap - b->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *errmsg = errorf("cannot read", path, errno);
            goto fail;
        }
        if (r == 0)
            break;
        b->len += (size_t) r;
    }
    goto out;
fail:
    sh_blob_unref(b);
    b = NULL;
out:
    close(fd);
    return b;
}

/* Turns raw text into the LINES layout in place: CRLF becomes LF, a last line without '\n'
 * gets one, and the lines are counted. */
static int frame_lines(sh_blob_t **bp)
{
    sh_blob_t *b = *bp;
    size_t i, o = 0;
    uint32_t count = 0;

    for (i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == '\r' && i + 1 < b->len && b->data[i + 1] == '\n')
            continue;
        if (c == '\n')
            count++;
        b->data[o++] = c;
    }
    b->len = o;
    if (o > 0 && b->data[o - 1] != '\n') {
        if (sh_blob_append(bp, "\n", 1))
            return SH_ENOMEM;
        count++;
    }
    (*bp)->count = count;
    return 0;
}

/* Reads a text file as LINES: returns a blob (the caller's reference) or NULL with *errmsg. */
SH_EXPORT sh_blob_t *sh_ffi_file_read_lines(const char *path, char **errmsg)
{
    sh_blob_t *b;

    *errmsg = NULL;
    b = read_all(path, SH_BLOB_LINES, errmsg);
    if (b != NULL && frame_lines(&b)) {
        sh_blob_unref(b);
        *errmsg = sh__strdup("out of memory reading a file");
        return NULL;
    }
    return b;
}

/* Reads a file of fixed-length records: keeps the whole records, and reports in *leftover the
 * bytes of a last partial record (dropped). NULL with *errmsg on failure. */
SH_EXPORT sh_blob_t *sh_ffi_file_read_fixed(const char *path, uint32_t reclen, size_t *leftover,
                                            char **errmsg)
{
    sh_blob_t *b;

    *errmsg = NULL;
    *leftover = 0;
    if (reclen == 0) {
        *errmsg = sh__strdup("record length must be positive");
        return NULL;
    }
    b = read_all(path, SH_BLOB_FIXED, errmsg);
    if (b == NULL)
        return NULL;
    *leftover = b->len % reclen;
    b->len -= *leftover;
    b->reclen = reclen;
    b->count = (uint32_t) (b->len / reclen);
    return b;
}

/* -- Durable directory operations ------------------------------------------ */

/* Creates directory `path` and its missing parents (mode 0755). 0, or -1 with *errmsg set
 * (free with sh_ffi_free) naming the path that could not be made. Any thread. */
SH_EXPORT int sh_ffi_mkdirs(const char *path, char **errmsg)
{
    char buf[4096];
    size_t len = strlen(path);

    *errmsg = NULL;
    if (len == 0 || len >= sizeof buf) {
        *errmsg = errorf("cannot create directory", path, len ? ENAMETOOLONG : ENOENT);
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            struct stat st;

            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
                *errmsg = errorf("cannot create directory", buf, errno);
                return -1;
            }
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                *errmsg = errorf("cannot create directory", buf, ENOTDIR);
                return -1;
            }
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* fsyncs the file or directory at `path`, so what was written there survives a crash. 0, or
 * -1 with *errmsg set (free with sh_ffi_free). File systems that cannot fsync a directory
 * (EINVAL) count as done. Any thread. */
SH_EXPORT int sh_ffi_fsync_path(const char *path, char **errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *errmsg = NULL;
    if (fd < 0) {
        *errmsg = errorf("cannot open for fsync", path, errno);
        return -1;
    }
    if (fsync(fd) != 0 && errno != EINVAL) {
        *errmsg = errorf("cannot fsync", path, errno);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Puts directory `tmp` in the place of `path` in one step: renamed when `path` does not exist,
 * else exchanged with it (renameat2 RENAME_EXCHANGE), so a reader sees the old directory or
 * the new one, never none; the old one is then at `tmp`, for the caller to remove. Returns 1
 * when an old directory was exchanged, 0 when there was none, -1 with *errmsg set (free with
 * sh_ffi_free). The parent directory is fsynced. Any thread. */
SH_EXPORT int sh_ffi_replace_dir(const char *tmp, const char *path, char **errmsg)
{
    char parent[4096];
    const char *slash = strrchr(path, '/');
    int exchanged = 0;

    *errmsg = NULL;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
        if (errno != EEXIST) {
            char buf[8400];

            snprintf(buf, sizeof buf, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
            *errmsg = sh__strdup(buf);
            return -1;
        }
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) != 0) {
            char buf[8400];

            snprintf(buf, sizeof buf, "cannot replace %s with %s: %s", path, tmp, strerror(errno));
            *errmsg = sh__strdup(buf);
            return -1;
        }
        exchanged = 1;
    }
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else if (slash == path)
        snprintf(parent, sizeof parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int) (slash - path), path);
    if (sh_ffi_fsync_path(parent, errmsg) != 0)
        return -1;
    return exchanged;
}

/* sh_files.c: directory listing, path globbing and whole-file reads into blobs, for
 * textFileStream, binaryRecordsStream and SparkContext.textFile. */
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
    char buf[4096];

    snprintf(buf, sizeof buf, "%s %s: %s", what, path, strerror(e));
    return sh__strdup(buf);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Packs n names into NUL-terminated names back to back in a new *out (free with sh_free), *len
 * bytes in all. 0 or SH_ENOMEM. */
static int pack_names(char *const *list, size_t n, char **out, size_t *len)
{
    size_t i, total = 0, off = 0;
    char *p;

    for (i = 0; i < n; i++)
        total += strlen(list[i]) + 1;
    p = sh_malloc(total);
    if (p == NULL)
        return SH_ENOMEM;
    for (i = 0; i < n; i++) {
        size_t l = strlen(list[i]) + 1;
        memcpy(p + off, list[i], l);
        off += l;
    }
    *out = p;
    *len = total;
    return 0;
}

/* Lists the regular files of `dir` whose names do not start with '.', sorted by name, as
 * NUL-terminated names back to back in *names (free with sh_ffi_free), *len bytes in all.
 * Returns the number of names, or -1 with *errmsg set (free with sh_ffi_free). */
SH_EXPORT int sh_ffi_dir_list(const char *dir, char **names, size_t *len, char **errmsg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **list = NULL, path[4096];
    size_t n = 0, cap = 0, i;
    int rc = -1;

    *names = NULL;
    *len = 0;
    *errmsg = NULL;
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
        if (n == cap) {
            char **nl = sh_realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*nl));
            if (nl == NULL)
                goto out;
            list = nl;
        }
        if ((list[n] = sh__strdup(e->d_name)) == NULL)
            goto out;
        n++;
    }
    if (n > 1)  /* list is NULL for an empty directory, which qsort must not be given */
        qsort(list, n, sizeof(*list), cmp_names);
    if (pack_names(list, n, names, len) != 0)
        goto out;
    rc = (int) n;
out:
    if (rc < 0)
        *errmsg = sh__strdup("out of memory listing a directory");
    for (i = 0; i < n; i++)
        sh_free(list[i]);
    sh_free(list);
    closedir(d);
    return rc;
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
    if (pack_names(g.gl_pathv, g.gl_pathc, names, len) != 0) {
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

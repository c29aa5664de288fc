/* test_ckpt_file.c: checkpoint files (host/sh_ckpt_file.c): round trips, atomic overwrite,
 * each kind of damaged file refused with its own message, failed writes that leave the old
 * file and no temporary file, listing newest first, pruning, and a 20 MB payload. */
#include "sh_ckpt_file.h"
#include "sh_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char root[] = "/tmp/sh-ckpt-test-XXXXXX";

/* A fresh directory under root for one test, in a static buffer. */
static const char *subdir(const char *name)
{
    static char path[512];

    snprintf(path, sizeof path, "%s/%s", root, name);
    mkdir(path, 0755);
    return path;
}

static int write_raw(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t w;

    if (fd < 0)
        return -1;
    w = write(fd, data, len);
    close(fd);
    return w == (ssize_t) len ? 0 : -1;
}

/* Reads the whole raw file (header and all) into buf; its length, or -1. */
static long read_raw(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t r;

    if (fd < 0)
        return -1;
    r = read(fd, buf, cap);
    close(fd);
    return (long) r;
}

/* How many entries of `dir` start with '.' other than "." and "..": temporary files. */
static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Reads `path` expecting failure `code` with `what` in the message, which must name `path`. */
static int refused_with(const char *path, int code, const char *what, char *why, size_t cap)
{
    char *data = (char *) 1, *err = NULL;
    size_t len = 7;
    int rc = sh_ckpt_read(path, &data, &len, &err);
    int good = rc == code && data == NULL && len == 0 && err != NULL && strstr(err, path) &&
               strstr(err, what);

    snprintf(why, cap, "rc %d, message \"%s\"", rc, err ? err : "(none)");
    sh_free(err);
    return good;
}

static void test_crc32c_matches_the_standard_check_value(void)
{
    CHECK(sh__ckpt_crc32c(0, "123456789", 9) == 0xE3069283u, "crc %08x",
          (unsigned) sh__ckpt_crc32c(0, "123456789", 9));
    CHECK(sh__ckpt_crc32c(sh__ckpt_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u,
          "continued crc");
    CHECK(sh__ckpt_crc32c(0, "", 0) == 0, "empty");
    OK();
}

static void test_round_trip(void)
{
    const char *dir = subdir("round");
    char path[600], *data = NULL, *err = NULL;
    size_t len = 0;
    int rc;

    rc = sh_ckpt_write(dir, "checkpoint-1", "hello\0world", 11, &err);
    CHECK(rc == 0 && err == NULL, "write %d %s", rc, err);
    snprintf(path, sizeof path, "%s/checkpoint-1", dir);
    rc = sh_ckpt_read(path, &data, &len, &err);
    CHECK(rc == 0 && err == NULL, "read %d %s", rc, err);
    CHECK(len == 11 && memcmp(data, "hello\0world", 11) == 0 && data[11] == '\0', "len %zu", len);
    sh_free(data);
    rc = sh_ckpt_write(dir, "empty", NULL, 0, NULL);
    CHECK(rc == 0, "write empty %d", rc);
    snprintf(path, sizeof path, "%s/empty", dir);
    rc = sh_ckpt_read(path, &data, &len, NULL);
    CHECK(rc == 0 && len == 0 && data != NULL && data[0] == '\0', "read empty %d", rc);
    sh_free(data);
    CHECK(count_temps(dir) == 0, "temporary files left");
    OK();
}

static void test_overwrite_keeps_only_the_new_content(void)
{
    const char *dir = subdir("overwrite");
    char path[600], *data = NULL;
    size_t len = 0;
    struct stat st;

    CHECK(sh_ckpt_write(dir, "c", "old content that is longer", 26, NULL) == 0, "first");
    CHECK(sh_ckpt_write(dir, "c", "new", 3, NULL) == 0, "second");
    snprintf(path, sizeof path, "%s/c", dir);
    CHECK(sh_ckpt_read(path, &data, &len, NULL) == 0, "read");
    CHECK(len == 3 && memcmp(data, "new", 3) == 0, "len %zu", len);
    sh_free(data);
    CHECK(stat(path, &st) == 0 && st.st_size == SH_CKPT_HEADER_SIZE + 3, "size %ld",
          (long) st.st_size);
    CHECK(count_temps(dir) == 0, "%d temporary files left", count_temps(dir));
    OK();
}

static void test_damaged_files_are_refused_each_with_its_message(void)
{
    const char *dir = subdir("damaged");
    char path[600], why[1024], good[4096 + SH_CKPT_HEADER_SIZE], bad[sizeof good + 8];
    long n;
    uint32_t crc;
    int i;

    for (i = 0; i < 4096; i++)
        good[SH_CKPT_HEADER_SIZE + i] = (char) (i * 7);
    CHECK(sh_ckpt_write(dir, "c", good + SH_CKPT_HEADER_SIZE, 4096, NULL) == 0, "write");
    snprintf(path, sizeof path, "%s/c", dir);
    n = read_raw(path, good, sizeof good);
    CHECK(n == (long) sizeof good, "raw size %ld", n);
    snprintf(path, sizeof path, "%s/bad", dir);

    /* Truncated: the header promises 4096 bytes, 100 follow. */
    CHECK(write_raw(path, good, SH_CKPT_HEADER_SIZE + 100) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "truncated: 100 of 4096 payload bytes", why,
                       sizeof why), "%s", why);
    /* Truncated inside the header. */
    CHECK(write_raw(path, good, 10) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "truncated: 10 of 24 header bytes", why,
                       sizeof why), "%s", why);
    /* Bytes after the payload. */
    memcpy(bad, good, sizeof good);
    memcpy(bad + sizeof good, "trailing", 8);
    CHECK(write_raw(path, bad, sizeof bad) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "8 bytes after the 4096 payload bytes", why,
                       sizeof why), "%s", why);
    /* One flipped payload bit. */
    memcpy(bad, good, sizeof good);
    bad[SH_CKPT_HEADER_SIZE + 1000] ^= 0x10;
    CHECK(write_raw(path, bad, sizeof good) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, ": checksum mismatch", why, sizeof why), "%s",
          why);
    /* One flipped header byte: in the length, in the payload checksum, in the magic. */
    memcpy(bad, good, sizeof good);
    bad[9] ^= 0x01;
    CHECK(write_raw(path, bad, sizeof good) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "header checksum mismatch", why, sizeof why),
          "%s", why);
    memcpy(bad, good, sizeof good);
    bad[17] ^= 0x40;
    CHECK(write_raw(path, bad, sizeof good) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "header checksum mismatch", why, sizeof why),
          "%s", why);
    memcpy(bad, good, sizeof good);
    bad[1] ^= 0x20;
    CHECK(write_raw(path, bad, sizeof good) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_ECORRUPT, "not a checkpoint file (bad magic)", why,
                       sizeof why), "%s", why);
    /* A well-formed header of format version 7. */
    memcpy(bad, good, sizeof good);
    bad[4] = 7;
    crc = sh__ckpt_crc32c(0, bad, 20);
    for (i = 0; i < 4; i++)
        bad[20 + i] = (char) (crc >> (8 * i));
    CHECK(write_raw(path, bad, sizeof good) == 0, "raw write");
    CHECK(refused_with(path, SH_CKPT_EVERSION, "format version 7 is not supported", why,
                       sizeof why), "%s", why);
    /* No file at all. */
    snprintf(path, sizeof path, "%s/missing", dir);
    CHECK(refused_with(path, SH__ERR(ENOENT), "No such file or directory", why, sizeof why),
          "%s", why);
    OK();
}

static void test_writes_that_cannot_start_name_the_path_and_leave_nothing(void)
{
    const char *dir = subdir("nowhere");
    char file[600], target[700], *err = NULL;
    int rc;

    /* A directory that does not exist. */
    snprintf(target, sizeof target, "%s/absent", dir);
    rc = sh_ckpt_write(target, "c", "x", 1, &err);
    CHECK(rc == SH__ERR(ENOENT) && err && strstr(err, "/nowhere/absent/c") &&
          strstr(err, "No such file or directory"), "rc %d: %s", rc, err);
    sh_free(err);
    /* A "directory" that is a regular file: fails for root too, unlike a read-only one. */
    snprintf(file, sizeof file, "%s/plain", dir);
    CHECK(write_raw(file, "x", 1) == 0, "raw write");
    rc = sh_ckpt_write(file, "c", "x", 1, &err);
    CHECK(rc == SH__ERR(ENOTDIR) && err && strstr(err, "/nowhere/plain/c") &&
          strstr(err, "Not a directory"), "rc %d: %s", rc, err);
    sh_free(err);
    CHECK(count_temps(dir) == 0, "temporary files left");
    /* A name that is not one plain component. */
    rc = sh_ckpt_write(dir, "../escape", "x", 1, &err);
    CHECK(rc == SH_EINVAL && err && strstr(err, "../escape"), "rc %d: %s", rc, err);
    sh_free(err);
    rc = sh_ckpt_write(dir, ".hidden", "x", 1, NULL);
    CHECK(rc == SH_EINVAL, "rc %d", rc);
    OK();
}

static void test_a_write_that_fails_midway_keeps_the_old_file(void)
{
    const char *dir = subdir("midway");
    struct rlimit old, small;
    char path[600], *big, *err = NULL, *data = NULL;
    size_t len = 0, n = 1 << 20;
    int rc;

    CHECK(sh_ckpt_write(dir, "c", "previous", 8, NULL) == 0, "first write");
    big = sh_calloc(n, 1);
    CHECK(big != NULL, "calloc");
    /* The file-size limit makes the write fail part way, as a full disk would. */
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    small = old;
    small.rlim_cur = 64 * 1024;
    setrlimit(RLIMIT_FSIZE, &small);
    rc = sh_ckpt_write(dir, "c", big, n, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    sh_free(big);
    CHECK(rc == SH__ERR(EFBIG) && err && strstr(err, "/midway/c") &&
          strstr(err, "File too large"), "rc %d: %s", rc, err);
    sh_free(err);
    CHECK(count_temps(dir) == 0, "%d temporary files left", count_temps(dir));
    snprintf(path, sizeof path, "%s/c", dir);
    CHECK(sh_ckpt_read(path, &data, &len, NULL) == 0, "read");
    CHECK(len == 8 && memcmp(data, "previous", 8) == 0, "previous content changed");
    sh_free(data);
    OK();
}

static void test_list_is_newest_first_and_keep_newest_prunes(void)
{
    const char *dir = subdir("list");
    static const char *const files[] = {
        "checkpoint-5", "checkpoint-100", "checkpoint-20", "checkpoint-0007", "other-3",
        "checkpoint-abc", "checkpoint-", "checkpoint-12.bak", ".checkpoint-999.tmp-1-1",
        "checkpoint-99999999999999999999999"};
    static const char *const want[] = {"checkpoint-99999999999999999999999", "checkpoint-100",
                                       "checkpoint-20", "checkpoint-0007", "checkpoint-5"};
    char path[700], **names = NULL, *err = NULL;
    size_t n = 0, i;
    int rc;

    for (i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        CHECK(write_raw(path, "x", 1) == 0, "raw write %s", files[i]);
    }
    snprintf(path, sizeof path, "%s/checkpoint-50000", dir);
    mkdir(path, 0755);  /* a directory is not a checkpoint */
    rc = sh_ckpt_list(dir, "checkpoint-", &names, &n, &err);
    CHECK(rc == 0 && err == NULL, "list %d %s", rc, err);
    CHECK(n == 5, "%zu names", n);
    for (i = 0; i < n; i++)
        CHECK(strcmp(names[i], want[i]) == 0, "names[%zu] %s, want %s", i, names[i], want[i]);
    sh_ckpt_names_free(names, n);

    rc = sh_ckpt_keep_newest(dir, "checkpoint-", 2, &err);
    CHECK(rc == 0 && err == NULL, "keep %d %s", rc, err);
    CHECK(sh_ckpt_list(dir, "checkpoint-", &names, &n, NULL) == 0, "list");
    CHECK(n == 2 && strcmp(names[0], want[0]) == 0 && strcmp(names[1], want[1]) == 0,
          "%zu left", n);
    sh_ckpt_names_free(names, n);
    snprintf(path, sizeof path, "%s/other-3", dir);
    CHECK(access(path, F_OK) == 0, "an unrelated file was removed");
    snprintf(path, sizeof path, "%s/checkpoint-abc", dir);
    CHECK(access(path, F_OK) == 0, "a name without a number was removed");
    CHECK(count_temps(dir) == 1, "the other temporary file was removed");

    CHECK(sh_ckpt_keep_newest(dir, "checkpoint-", 5, NULL) == 0, "keep more than there are");
    CHECK(sh_ckpt_keep_newest(dir, "checkpoint-", 0, NULL) == 0, "keep none");
    CHECK(sh_ckpt_list(dir, "checkpoint-", &names, &n, NULL) == 0 && n == 0 && names == NULL,
          "%zu left", n);

    snprintf(path, sizeof path, "%s/absent", dir);
    rc = sh_ckpt_list(path, "checkpoint-", &names, &n, &err);
    CHECK(rc == SH__ERR(ENOENT) && err && strstr(err, path), "rc %d: %s", rc, err);
    sh_free(err);
    rc = sh_ckpt_keep_newest(path, "checkpoint-", 1, &err);
    CHECK(rc == SH__ERR(ENOENT) && err && strstr(err, path), "rc %d: %s", rc, err);
    sh_free(err);
    OK();
}

static void test_a_20_mb_payload_round_trips(void)
{
    const char *dir = subdir("big");
    size_t n = 20u << 20, len = 0, i;
    char *big = sh_malloc(n), *data = NULL, *err = NULL, path[600];
    uint32_t x = 2463534242u;
    int rc;

    CHECK(big != NULL, "malloc");
    for (i = 0; i < n; i++) {  /* xorshift: bytes no run-length trick could fake */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (char) x;
    }
    rc = sh_ckpt_write(dir, "checkpoint-1", big, n, &err);
    if (rc != 0)
        sh_free(big);
    CHECK(rc == 0, "write %d %s", rc, err);
    snprintf(path, sizeof path, "%s/checkpoint-1", dir);
    rc = sh_ckpt_read(path, &data, &len, &err);
    rc = rc != 0 ? rc : (len == n && memcmp(data, big, n) == 0) ? 0 : -1;
    sh_free(big);
    sh_free(data);
    CHECK(rc == 0, "read %d %s, len %zu", rc, err, len);
    OK();
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st, (void) flag, (void) ftw;
    return remove(path);
}

/* Temporary files of writers that are gone are removed; a live writer's (this process's, and
 * pid 1's) and other dot files stay. The gone writer is a child that has exited and been
 * reaped. */
static void test_stale_temporaries_of_dead_writers_are_removed(void)
{
    const char *dir = subdir("stale");
    char path[700], dead_tmp[64], mine_tmp[64];
    pid_t child = fork();
    int status;

    if (child == 0)
        _exit(0);
    CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork");
    snprintf(dead_tmp, sizeof dead_tmp, ".metadata-3.tmp-%ld-0", (long) child);
    snprintf(mine_tmp, sizeof mine_tmp, ".metadata-4.tmp-%ld-1", (long) getpid());
    const char *const names[] = {dead_tmp, mine_tmp, ".state-9.tmp-1-2", ".hidden", "metadata-2"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(write_raw(path, "x", 1) == 0, "raw write %s", names[i]);
    }
    CHECK(sh_ckpt_remove_stale_tmp(dir) == 1, "one removed");
    snprintf(path, sizeof path, "%s/%s", dir, dead_tmp);
    CHECK(access(path, F_OK) != 0, "%s is gone", dead_tmp);
    for (size_t i = 1; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(access(path, F_OK) == 0, "%s stays", names[i]);
    }
    CHECK(sh_ckpt_remove_stale_tmp("/nonexistent/dir") == 0, "an unreadable directory");
    OK();
}

int main(void)
{
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_crc32c_matches_the_standard_check_value();
    test_round_trip();
    test_overwrite_keeps_only_the_new_content();
    test_damaged_files_are_refused_each_with_its_message();
    test_writes_that_cannot_start_name_the_path_and_leave_nothing();
    test_a_write_that_fails_midway_keeps_the_old_file();
    test_list_is_newest_first_and_keep_newest_prunes();
    test_a_20_mb_payload_round_trips();
    test_stale_temporaries_of_dead_writers_are_removed();
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

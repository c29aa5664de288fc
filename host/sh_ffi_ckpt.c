/* sh_ffi_ckpt.c: the checkpoint functions that lua/streamhost/ffi.lua declares: the writer
 * thread and its jobs, synchronous reads and listings of checkpoint files, and a checksum for
 * scripts. Strings handed out are the caller's, freed with sh_ffi_free. */
#include "sh_ckpt_file.h"
#include "sh_ckpt_writer.h"
#include "sh_common.h"
#include "sh_host.h"

#include <string.h>

#define SH_EXPORT __attribute__((visibility("default")))

static void wake_driver(void *ud)
{
    uv_async_send(&((sh_host_t *) ud)->wake);
}

/* A writer that wakes host `h`'s driver after each job. Loop thread. */
SH_EXPORT sh_ckpt_writer_t *sh_ffi_ckpt_writer_new(sh_host_t *h, char **errmsg)
{
    return sh_ckpt_writer_new(wake_driver, h, errmsg);
}

SH_EXPORT void sh_ffi_ckpt_writer_free(sh_ckpt_writer_t *w)
{
    sh_ckpt_writer_free(w);
}

SH_EXPORT sh_ckpt_job_t *sh_ffi_ckpt_job_new(const char *dir, const char *name)
{
    return sh_ckpt_job_new(dir, name);
}

SH_EXPORT int sh_ffi_ckpt_job_add_bytes(sh_ckpt_job_t *j, const char *bytes, size_t len)
{
    return sh_ckpt_job_add_bytes(j, bytes, len);
}

SH_EXPORT int sh_ffi_ckpt_job_add_blob(sh_ckpt_job_t *j, sh_blob_t *b)
{
    return sh_ckpt_job_add_blob(j, b);
}

SH_EXPORT int sh_ffi_ckpt_job_keep_newest(sh_ckpt_job_t *j, const char *prefix, double keep)
{
    return sh_ckpt_job_keep_newest(j, prefix, (size_t) keep);
}

SH_EXPORT int sh_ffi_ckpt_job_remove_below(sh_ckpt_job_t *j, const char *prefix, double below)
{
    return sh_ckpt_job_remove_below(j, prefix, (uint64_t) below);
}

SH_EXPORT void sh_ffi_ckpt_job_free(sh_ckpt_job_t *j)
{
    sh_ckpt_job_free(j);
}

SH_EXPORT double sh_ffi_ckpt_submit(sh_ckpt_writer_t *w, sh_ckpt_job_t *j)
{
    return (double) sh_ckpt_writer_submit(w, j);
}

SH_EXPORT int sh_ffi_ckpt_next_done(sh_ckpt_writer_t *w, double *id, int *rc, char **errmsg)
{
    uint64_t n;
    int got = sh_ckpt_writer_next_done(w, &n, rc, errmsg);

    *id = got ? (double) n : 0;
    return got;
}

SH_EXPORT void sh_ffi_ckpt_drain(sh_ckpt_writer_t *w)
{
    sh_ckpt_writer_drain(w);
}

/* Writes a checkpoint file now, on the calling thread (sh_ckpt_write). */
SH_EXPORT int sh_ffi_ckpt_write(const char *dir, const char *name, const char *data, size_t len,
                                char **errmsg)
{
    return sh_ckpt_write(dir, name, data, len, errmsg);
}

SH_EXPORT int sh_ffi_ckpt_remove_stale_tmp(const char *dir)
{
    return sh_ckpt_remove_stale_tmp(dir);
}

SH_EXPORT int sh_ffi_ckpt_read(const char *path, char **data, size_t *len, char **errmsg)
{
    return sh_ckpt_read(path, data, len, errmsg);
}

/* The checkpoint files of `dir` named `prefix`<number>, newest first, as NUL-terminated names
 * back to back in *names (*len bytes). Returns their number, or a negative code with *errmsg. */
SH_EXPORT int sh_ffi_ckpt_list(const char *dir, const char *prefix, char **names, size_t *len,
                               char **errmsg)
{
    char **list;
    size_t n;
    int rc = sh_ckpt_list(dir, prefix, &list, &n, errmsg);

    *names = NULL;
    *len = 0;
    if (rc != 0)
        return rc;
    rc = sh__pack_names(list, n, names, len);
    sh_ckpt_names_free(list, n);
    if (rc != 0) {
        *errmsg = sh__strdup("out of memory listing checkpoint files");
        return rc;
    }
    return (int) n;
}

/* CRC-32C of `len` bytes continuing from `crc` (0 to start). Any thread. */
SH_EXPORT uint32_t sh_ffi_crc32c(uint32_t crc, const char *data, size_t len)
{
    return sh__ckpt_crc32c(crc, data, len);
}

/* sh_ckpt_file.h: checkpoint files: atomic, checksummed writes of one payload, verified reads,
 * and listing and pruning the numbered checkpoints of a directory. No Lua; any thread.
 *
 * A file is a 24-byte header, then the payload. The header, all integers little-endian:
 *   0  "SHCK"                     magic
 *   4  u32 format version         SH_CKPT_VERSION
 *   8  u64 payload length         in bytes
 *  16  u32 CRC-32C of the payload
 *  20  u32 CRC-32C of bytes 0..19 (the header before it)
 * Readers check the magic, then the version (a later version may lay the rest out otherwise),
 * then the header's checksum, then the length against the file's size, then the payload's
 * checksum. */
#ifndef SH_CKPT_FILE_H
#define SH_CKPT_FILE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define SH_CKPT_MAGIC       "SHCK"
#define SH_CKPT_VERSION     1
#define SH_CKPT_HEADER_SIZE 24

/* sh_ckpt_read's codes for a file that is there but is not a good checkpoint. Other failures
 * are negative errno values (SH__ERR(errno)), as everywhere in the host. */
#define SH_CKPT_ECORRUPT (-EBADMSG) /* bad magic, bad checksum, truncated or trailing bytes */
#define SH_CKPT_EVERSION (-ENOTSUP) /* a format version this host does not read */

/* Writes `len` bytes of `data` as the checkpoint file `dir`/`name`, atomically: into a new
 * temporary file ".<name>.tmp-<pid>-<n>" in `dir`, fsynced, renamed over `name`, then `dir` is
 * fsynced. A reader sees the old file or the new one, never a mix, and after a return of 0 the
 * new one survives a crash. `name` must be one path component not starting with '.'.
 *
 * Returns 0, or a negative errno-style code (SH_EINVAL for a bad name) with *errmsg set to a
 * new string naming the path and the system error (caller frees with sh_free; errmsg may be
 * NULL). On a failure before the rename the temporary file is removed and the previous `name`
 * is untouched; if only the final directory fsync fails, the new file is in place but may not
 * survive a crash, and the error says so. `data` stays the caller's. Any thread; concurrent
 * writers of the same name leave one of their files whole. */
int sh_ckpt_write(const char *dir, const char *name, const void *data, size_t len,
                  char **errmsg);

/* A part of a payload that sh_ckpt_writev writes. */
typedef struct sh_ckpt_piece_s {
    const void *data;
    size_t len;
} sh_ckpt_piece_t;

/* sh_ckpt_write of a payload given in `npieces` parts, written one after the other (the
 * checksum covers them as one payload). Same contract; the pieces stay the caller's. */
int sh_ckpt_writev(const char *dir, const char *name, const sh_ckpt_piece_t *pieces,
                   size_t npieces, char **errmsg);

/* Reads and verifies the checkpoint file at `path`. On success returns 0 with *data a new
 * buffer of *len payload bytes (caller frees with sh_free; one NUL byte follows the payload,
 * not counted in *len). On failure returns a negative code, sets *data = NULL and *len = 0, and
 * *errmsg (caller frees with sh_free; may be NULL) names the path and what is wrong:
 * SH_CKPT_ECORRUPT ("not a checkpoint file (bad magic)", "header checksum mismatch",
 * "truncated: 100 of 4096 payload bytes", "checksum mismatch", ...), SH_CKPT_EVERSION ("format
 * version 7 is not supported"), or an errno code from open/read. Any thread. */
int sh_ckpt_read(const char *path, char **data, size_t *len, char **errmsg);

/* The checkpoint files of `dir` named `prefix` followed by a decimal number and nothing else
 * (e.g. "checkpoint-1700000000000" for prefix "checkpoint-"), newest (largest number) first.
 * Temporary files (names starting with '.') and other names are ignored; only regular files
 * count. Returns 0 with *names a new array of *n new strings (bare names, not paths; free the
 * lot with sh_ckpt_names_free), or a negative code with *errmsg set (caller frees with sh_free;
 * may be NULL) and *names = NULL, *n = 0. Any thread. */
int sh_ckpt_list(const char *dir, const char *prefix, char ***names, size_t *n, char **errmsg);

/* Frees an array from sh_ckpt_list: its `n` strings and the array. NULL is fine. */
void sh_ckpt_names_free(char **names, size_t n);

/* Removes all but the newest `keep` of the checkpoint files sh_ckpt_list(dir, prefix) names
 * (keep 0 removes them all). Returns 0, or the first negative code with *errmsg set (caller
 * frees with sh_free; may be NULL); it still tries to remove the rest. A file that is already
 * gone is not an error. Any thread, but do not prune while another thread writes to `dir`
 * with the same prefix unless losing its file is acceptable. */
int sh_ckpt_keep_newest(const char *dir, const char *prefix, size_t keep, char **errmsg);

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `len` bytes, continuing from
 * `crc` (0 to start). Exposed for the tests. Any thread. */
uint32_t sh__ckpt_crc32c(uint32_t crc, const void *data, size_t len);

/* Removes the temporary files ".<name>.tmp-<pid>-<n>" that writers killed midway left in
 * `dir`: those of processes that no longer run (kill(pid, 0) says ESRCH). A live writer's,
 * this process's among them, stay. Returns how many it removed (0 when `dir` cannot be read).
 * Any thread. */
int sh_ckpt_remove_stale_tmp(const char *dir);

#endif

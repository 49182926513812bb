/*
 * import_src.h - one input of `tickflow import`: a file or stdin, plain or
 * gzip (detected by its magic bytes 1f 8b, several members allowed), with
 * the SHA-256 of its raw bytes.
 *
 * The hash decides whether the content was imported before, so it is needed
 * before the first row is written: a regular file is read once for the hash
 * and then again for the rows; a pipe is copied to an unlinked temporary file
 * (in $TMPDIR, else /tmp) while being hashed, then read from there. With
 * hash_first = 0 (--force) nothing is read ahead and the hash is complete
 * at end of input. Memory use is constant (two 256 KiB buffers and zlib's
 * window).
 */
#ifndef TF_INGEST_IMPORT_SRC_H
#define TF_INGEST_IMPORT_SRC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct tf_imp_src tf_imp_src;

/* path "-" is stdin. Returns NULL with errbuf (cannot open, read error). */
tf_imp_src *tf_imp_src_open(const char *path, int hash_first, char *errbuf, size_t errlen);
void tf_imp_src_free(tf_imp_src *s);

/*
 * Reads up to cap bytes of content (decompressed) into buf. Returns the
 * count, 0 at end of input, -1 with errbuf (read error, corrupt gzip).
 */
ssize_t tf_imp_src_read(tf_imp_src *s, char *buf, size_t cap, char *errbuf, size_t errlen);

/* 64 lowercase hex digits, or "" while not yet known (hash_first = 0 and
 * not at end of input). Borrowed, valid until tf_imp_src_free. */
const char *tf_imp_src_sha256(const tf_imp_src *s);
/* The name for messages: the path, or "stdin". */
const char *tf_imp_src_name(const tf_imp_src *s);
int tf_imp_src_is_gzip(const tf_imp_src *s);
/* Raw (compressed) bytes consumed so far, and the raw size (-1 unknown). */
int64_t tf_imp_src_pos(const tf_imp_src *s);
int64_t tf_imp_src_size(const tf_imp_src *s);

#endif

/*
 * import_src.c - files, stdin, gzip and SHA-256 for `tickflow import` (see
 * import_src.h). Decompression is zlib's (Debian zlib1g-dev: the reference
 * implementation of the gzip format), hashing OpenSSL's EVP SHA-256 (libcrypto
 * is linked already; it uses the CPU's SHA instructions).
 */
#include "ingest/import_src.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define RAW (256 * 1024)

struct tf_imp_src {
    int fd;
    int own_fd;
    char name[512];
    EVP_MD_CTX *md;  /* hashing while reading (hash_first = 0) */
    char hex[65];
    int gzip, zinit, zdone;
    z_stream z;
    unsigned char *raw;
    size_t rlen, roff; /* raw bytes buffered, consumed */
    int eof;           /* raw input at end */
    int64_t pos, size;
};

static void to_hex(const unsigned char *d, unsigned n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static ssize_t read_full(int fd, unsigned char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Hashes the whole of fd from its current position; for a pipe, copies it
 * to an unlinked temp file and makes *fd that file. */
static int hash_ahead(tf_imp_src *s, int seekable, char *errbuf, size_t errlen)
{
    int tmp = -1;
    if (!seekable) {
        const char *dir = getenv("TMPDIR");
        char path[512];
        snprintf(path, sizeof path, "%s/tickflow-import-XXXXXX", dir && *dir ? dir : "/tmp");
        tmp = mkstemp(path);
        if (tmp < 0) {
            snprintf(errbuf, errlen, "%s: cannot create a temporary file to hash the input: %s", s->name,
                     strerror(errno));
            return -1;
        }
        unlink(path);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        if (tmp >= 0)
            close(tmp);
        snprintf(errbuf, errlen, "cannot start SHA-256");
        return -1;
    }
    int64_t total = 0;
    for (;;) {
        ssize_t n = read_full(s->fd, s->raw, RAW);
        if (n < 0) {
            snprintf(errbuf, errlen, "%s: read error: %s", s->name, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, s->raw, (size_t)n);
        total += n;
        if (tmp >= 0) {
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(tmp, s->raw + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    snprintf(errbuf, errlen, "%s: cannot spool to a temporary file: %s", s->name,
                             strerror(errno));
                    goto fail;
                }
                off += w;
            }
        }
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    to_hex(d, dl, s->hex);
    if (tmp >= 0) {
        if (s->own_fd)
            close(s->fd);
        s->fd = tmp;
        s->own_fd = 1;
        s->size = total;
    }
    if (lseek(s->fd, 0, SEEK_SET) < 0) {
        snprintf(errbuf, errlen, "%s: cannot rewind: %s", s->name, strerror(errno));
        return -1;
    }
    return 0;
fail:
    EVP_MD_CTX_free(md);
    if (tmp >= 0)
        close(tmp);
    return -1;
}

tf_imp_src *tf_imp_src_open(const char *path, int hash_first, char *errbuf, size_t errlen)
{
    tf_imp_src *s = calloc(1, sizeof *s);
    if (!s || !(s->raw = malloc(RAW))) {
        free(s);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->size = -1;
    if (strcmp(path, "-") == 0) {
        s->fd = 0;
        snprintf(s->name, sizeof s->name, "stdin");
    } else {
        snprintf(s->name, sizeof s->name, "%s", path);
        s->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s->fd < 0) {
            snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
            free(s->raw);
            free(s);
            return NULL;
        }
        s->own_fd = 1;
    }
    struct stat st;
    int seekable = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (seekable)
        s->size = st.st_size;
    if (hash_first) {
        if (seekable && lseek(s->fd, 0, SEEK_CUR) != 0) /* stdin redirected mid-file */
            seekable = 0;
        if (hash_ahead(s, seekable, errbuf, errlen) != 0) {
            tf_imp_src_free(s);
            return NULL;
        }
    } else {
        s->md = EVP_MD_CTX_new();
        if (!s->md || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
            snprintf(errbuf, errlen, "cannot start SHA-256");
            tf_imp_src_free(s);
            return NULL;
        }
    }
    if (posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL) != 0) {
        /* only a hint (fails on pipes) */
    }
    return s;
}

void tf_imp_src_free(tf_imp_src *s)
{
    if (!s)
        return;
    if (s->own_fd)
        close(s->fd);
    if (s->zinit)
        inflateEnd(&s->z);
    EVP_MD_CTX_free(s->md);
    free(s->raw);
    free(s);
}

/* Refills the raw buffer when it is empty; 0 or -1. */
static int fill_raw(tf_imp_src *s, char *errbuf, size_t errlen)
{
    if (s->roff < s->rlen || s->eof)
        return 0;
    ssize_t n = read_full(s->fd, s->raw, RAW);
    if (n < 0) {
        snprintf(errbuf, errlen, "%s: read error: %s", s->name, strerror(errno));
        return -1;
    }
    s->rlen = (size_t)n;
    s->roff = 0;
    if (n == 0) {
        s->eof = 1;
        if (s->md) {
            unsigned char d[EVP_MAX_MD_SIZE];
            unsigned dl = 0;
            EVP_DigestFinal_ex(s->md, d, &dl);
            EVP_MD_CTX_free(s->md);
            s->md = NULL;
            to_hex(d, dl, s->hex);
        }
    } else if (s->md) {
        EVP_DigestUpdate(s->md, s->raw, (size_t)n);
    }
    return 0;
}

ssize_t tf_imp_src_read(tf_imp_src *s, char *buf, size_t cap, char *errbuf, size_t errlen)
{
    if (!s->zinit && !s->gzip && s->pos == 0 && s->rlen == 0) {
        if (fill_raw(s, errbuf, errlen) != 0)
            return -1;
        s->gzip = s->rlen >= 2 && s->raw[0] == 0x1f && s->raw[1] == 0x8b;
        if (s->gzip) {
            memset(&s->z, 0, sizeof s->z);
            if (inflateInit2(&s->z, 15 + 16) != Z_OK) {
                snprintf(errbuf, errlen, "cannot start gzip decompression");
                return -1;
            }
            s->zinit = 1;
        }
    }
    if (!s->gzip) {
        size_t got = 0;
        while (got < cap) {
            if (fill_raw(s, errbuf, errlen) != 0)
                return -1;
            if (s->roff == s->rlen)
                break;
            size_t n = s->rlen - s->roff < cap - got ? s->rlen - s->roff : cap - got;
            memcpy(buf + got, s->raw + s->roff, n);
            s->roff += n;
            s->pos += (int64_t)n;
            got += n;
        }
        return (ssize_t)got;
    }
    s->z.next_out = (unsigned char *)buf;
    s->z.avail_out = (unsigned)(cap > (1u << 30) ? (1u << 30) : cap);
    while (s->z.avail_out > 0) {
        if (fill_raw(s, errbuf, errlen) != 0)
            return -1;
        if (s->roff == s->rlen) {
            if (!s->zdone) {
                snprintf(errbuf, errlen, "%s: gzip data ends early (truncated file?)", s->name);
                return -1;
            }
            break;
        }
        if (s->zdone) { /* another gzip member follows */
            if (inflateReset(&s->z) != Z_OK) {
                snprintf(errbuf, errlen, "%s: gzip reset failed", s->name);
                return -1;
            }
            s->zdone = 0;
        }
        s->z.next_in = s->raw + s->roff;
        s->z.avail_in = (unsigned)(s->rlen - s->roff);
        int zr = inflate(&s->z, Z_NO_FLUSH);
        size_t used = (s->rlen - s->roff) - s->z.avail_in;
        s->roff += used;
        s->pos += (int64_t)used;
        if (zr == Z_STREAM_END) {
            s->zdone = 1;
        } else if (zr != Z_OK) {
            snprintf(errbuf, errlen, "%s: corrupt gzip data at byte %lld: %s", s->name,
                     (long long)s->pos, s->z.msg ? s->z.msg : "inflate failed");
            return -1;
        }
    }
    return (ssize_t)(cap - s->z.avail_out);
}

const char *tf_imp_src_sha256(const tf_imp_src *s) { return s->hex; }
const char *tf_imp_src_name(const tf_imp_src *s) { return s->name; }
int tf_imp_src_is_gzip(const tf_imp_src *s) { return s->gzip; }
int64_t tf_imp_src_pos(const tf_imp_src *s) { return s->pos; }
int64_t tf_imp_src_size(const tf_imp_src *s) { return s->size; }

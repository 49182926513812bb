/*
 * wsc.h - a small blocking WebSocket client (RFC 6455) over TCP or TLS, for
 * the provider feeds (providers/feed.h). One connection per object, used by
 * one thread; every call has a timeout, so a silent or half-open peer never
 * holds the caller past it.
 *
 * Why OpenSSL + our framing rather than libwebsockets: libwebsockets is not
 * among the packages this build may use (/work/.library/env/packages), and it
 * would bring its own event loop and callback model into a thread that only
 * needs "connect, send two messages, read messages until told to stop".
 * OpenSSL (libssl-dev, already on every Debian host, and libcrypto is already
 * ours for SHA-1/SHA-256) does TLS with certificate and host-name
 * verification; the frames are http/ws_frame.h's, the same parser the server
 * uses and fuzzes, in client mode (server frames unmasked, ours masked).
 */
#ifndef TF_WSC_H
#define TF_WSC_H

#include <stddef.h>
#include <stdint.h>

typedef struct tf_wsc tf_wsc;

typedef struct tf_wsc_opts {
    const char *ca_file;   /* PEM bundle to trust; NULL/"" = the system's store */
    int timeout_ms;        /* connect, TLS and upgrade handshakes, each write */
    size_t max_message;    /* largest message accepted (then the peer is closed) */
} tf_wsc_opts;

/*
 * Connects to url (ws://host[:port]/path?q or wss://...), verifies the
 * server's certificate and host name for wss, and completes the upgrade.
 * Returns NULL with errbuf filled on failure; *http_status (may be NULL) is
 * then the status the server answered instead of 101 (401/403 = credentials
 * refused), or 0 when it never answered. errbuf never holds the query string
 * (it may carry a token).
 */
tf_wsc *tf_wsc_connect(const char *url, const tf_wsc_opts *o, int *http_status, char *errbuf,
                       size_t errlen);

/* Sends one text message (masked). 0, or -1 with errbuf. */
int tf_wsc_send_text(tf_wsc *c, const char *msg, size_t len, char *errbuf, size_t errlen);

/*
 * Waits up to timeout_ms for the next data message. Returns 1 with *msg and *len
 * (borrowed, valid until the next call on c), 0 on timeout, -1 when the
 * connection is over (closed by the peer, protocol error, I/O error) with
 * errbuf saying why. Pings are answered here; they do not count as messages.
 */
int tf_wsc_recv(tf_wsc *c, int timeout_ms, const char **msg, size_t *len, char *errbuf,
                size_t errlen);

/* Sends a close frame (best effort) and frees everything. NULL ok. */
void tf_wsc_free(tf_wsc *c);

#endif

/*
 * ws_frame.c - RFC 6455 framing and handshake helpers (see ws_frame.h for
 * why this is not libwslay). SHA-1 and base64 come from OpenSSL libcrypto.
 */
#include "http/ws_frame.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/util.h"

int tf_ws_frame_parse(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                      tf_ws_frame *f)
{
    if (len < 2) return 0;
    int fin = buf[0] >> 7;
    int rsv = (buf[0] >> 4) & 7;
    int op = buf[0] & 0x0F;
    int masked = buf[1] >> 7;
    uint64_t plen = buf[1] & 0x7F;
    size_t hl = 2;

    if (rsv) return -TF_WS_CLOSE_PROTOCOL; /* no extension negotiated */
    switch (op) {
    case TF_WS_OP_CONT: case TF_WS_OP_TEXT: case TF_WS_OP_BINARY: break;
    case TF_WS_OP_CLOSE: case TF_WS_OP_PING: case TF_WS_OP_PONG:
        if (!fin || plen > 125) return -TF_WS_CLOSE_PROTOCOL;
        break;
    default: return -TF_WS_CLOSE_PROTOCOL;
    }
    if (masked != (require_mask ? 1 : 0)) return -TF_WS_CLOSE_PROTOCOL;
    if (plen == 126) {
        if (len < 4) return 0;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        if (plen < 126) return -TF_WS_CLOSE_PROTOCOL;
        hl = 4;
    } else if (plen == 127) {
        if (len < 10) return 0;
        plen = 0;
        for (int i = 0; i < 8; i++) plen = (plen << 8) | buf[2 + i];
        if (plen >> 63) return -TF_WS_CLOSE_PROTOCOL;
        if (plen <= 0xFFFF) return -TF_WS_CLOSE_PROTOCOL;
        hl = 10;
    }
    if (plen > max_payload) return -TF_WS_CLOSE_TOO_BIG;
    if (masked) {
        if (len < hl + 4) return 0;
        memcpy(f->mask, buf + hl, 4);
        hl += 4;
    } else {
        memset(f->mask, 0, 4);
    }
    f->fin = fin;
    f->opcode = op;
    f->masked = masked;
    f->payload_len = plen;
    f->header_len = hl;
    return (int)hl;
}

size_t tf_ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t plen, const uint8_t *mask)
{
    size_t n = 0;
    uint8_t mbit = mask ? 0x80 : 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (plen < 126) {
        out[n++] = (uint8_t)(mbit | plen);
    } else if (plen <= 0xFFFF) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(plen >> 8);
        out[n++] = (uint8_t)plen;
    } else {
        out[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--) out[n++] = (uint8_t)(plen >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void tf_ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++) buf[i] ^= mask[(offset + i) & 3];
}

void tf_ws_rx_init(tf_ws_rx *rx, int require_mask, uint64_t max_message)
{
    memset(rx, 0, sizeof *rx);
    rx->require_mask = require_mask;
    rx->max_message = max_message;
}

void tf_ws_rx_free(tf_ws_rx *rx)
{
    free(rx->msg);
    rx->msg = NULL;
    rx->msg_len = rx->msg_cap = 0;
    rx->in_message = 0;
}

static long rx_fail(tf_ws_rx *rx, int code, const char *why)
{
    rx->close_code = code;
    rx->error = why;
    return -1;
}

/* Close codes a peer may send (RFC 6455 7.4.1/7.4.2 and the IANA registry). */
static int close_code_valid(int c)
{
    if (c >= 3000 && c <= 4999) return 1;
    return c >= 1000 && c <= 1014 && c != 1004 && c != 1005 && c != 1006;
}

long tf_ws_rx_next(tf_ws_rx *rx, uint8_t *buf, size_t len, tf_ws_event *ev)
{
    tf_ws_frame f;
    memset(ev, 0, sizeof *ev);
    int hl = tf_ws_frame_parse(buf, len, rx->require_mask, rx->max_message, &f);
    if (hl == 0) return 0;
    if (hl < 0) {
        return rx_fail(rx, -hl, hl == -TF_WS_CLOSE_TOO_BIG ? "frame too large"
                                                            : "malformed frame header");
    }
    if ((uint64_t)len - (uint64_t)hl < f.payload_len) return 0;
    uint8_t *p = buf + hl;
    size_t plen = (size_t)f.payload_len;
    if (f.masked) tf_ws_mask(p, plen, f.mask, 0);
    long used = (long)(hl + plen);

    switch (f.opcode) {
    case TF_WS_OP_PING: ev->type = TF_WS_EV_PING; ev->data = p; ev->len = plen; return used;
    case TF_WS_OP_PONG: ev->type = TF_WS_EV_PONG; ev->data = p; ev->len = plen; return used;
    case TF_WS_OP_CLOSE:
        ev->type = TF_WS_EV_CLOSE;
        if (plen == 0) {
            ev->close_code = TF_WS_CLOSE_NO_STATUS;
            return used;
        }
        if (plen == 1) return rx_fail(rx, TF_WS_CLOSE_PROTOCOL, "close frame of 1 byte");
        ev->close_code = (p[0] << 8) | p[1];
        if (!close_code_valid(ev->close_code))
            return rx_fail(rx, TF_WS_CLOSE_PROTOCOL, "invalid close code");
        if (!tf_utf8_valid(p + 2, plen - 2))
            return rx_fail(rx, TF_WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
        ev->data = p + 2;
        ev->len = plen - 2;
        return used;
    default: break;
    }

    if (f.opcode == TF_WS_OP_CONT) {
        if (!rx->in_message) return rx_fail(rx, TF_WS_CLOSE_PROTOCOL, "continuation without a message");
    } else {
        if (rx->in_message) return rx_fail(rx, TF_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
        if (f.fin) { /* the common case: a whole message in one frame, no copy */
            if (f.opcode == TF_WS_OP_TEXT && !tf_utf8_valid(p, plen))
                return rx_fail(rx, TF_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
            ev->type = f.opcode == TF_WS_OP_TEXT ? TF_WS_EV_TEXT : TF_WS_EV_BINARY;
            ev->data = p;
            ev->len = plen;
            return used;
        }
        rx->in_message = 1;
        rx->msg_opcode = f.opcode;
        rx->msg_len = 0;
    }
    if ((uint64_t)rx->msg_len + plen > rx->max_message)
        return rx_fail(rx, TF_WS_CLOSE_TOO_BIG, "message too large");
    if (rx->msg_len + plen > rx->msg_cap) {
        size_t cap = rx->msg_cap ? rx->msg_cap : 256;
        while (cap < rx->msg_len + plen) cap *= 2;
        if (cap > rx->max_message) cap = (size_t)rx->max_message;
        uint8_t *m = realloc(rx->msg, cap ? cap : 1);
        if (!m) return rx_fail(rx, TF_WS_CLOSE_INTERNAL, "out of memory");
        rx->msg = m;
        rx->msg_cap = cap;
    }
    if (plen) memcpy(rx->msg + rx->msg_len, p, plen);
    rx->msg_len += plen;
    if (!f.fin) {
        ev->type = TF_WS_EV_NONE;
        return used;
    }
    rx->in_message = 0;
    if (rx->msg_opcode == TF_WS_OP_TEXT && !tf_utf8_valid(rx->msg, rx->msg_len))
        return rx_fail(rx, TF_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
    ev->type = rx->msg_opcode == TF_WS_OP_TEXT ? TF_WS_EV_TEXT : TF_WS_EV_BINARY;
    ev->data = rx->msg;
    ev->len = rx->msg_len;
    return used;
}

int tf_ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    if (!key) return -1;
    size_t klen = strlen(key);
    if (klen != 24 || key[22] != '=' || key[23] != '=') return -1;
    unsigned char raw[24];
    if (EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18) return -1;
    char cat[24 + sizeof guid];
    memcpy(cat, key, 24);
    memcpy(cat + 24, guid, sizeof guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(cat, 24 + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != 28) return -1;
    out[28] = '\0';
    return 0;
}

int tf_ws_header_has_token(const char *value, const char *token)
{
    if (!value) return 0;
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == tl && strncasecmp(s, token, tl) == 0) return 1;
    }
    return 0;
}

int tf_ws_check_upgrade(const char *method, int http_minor, const char *upgrade,
                        const char *connection, const char *version, const char *key,
                        const char **why)
{
    char acc[29];
    if (!method || strcmp(method, "GET") != 0) return *why = "WebSocket upgrade needs GET", 400;
    if (http_minor < 1) return *why = "WebSocket upgrade needs HTTP/1.1", 400;
    if (!tf_ws_header_has_token(upgrade, "websocket"))
        return *why = "missing header Upgrade: websocket", 426;
    if (!tf_ws_header_has_token(connection, "upgrade"))
        return *why = "missing header Connection: Upgrade", 400;
    if (!version || strcmp(version, "13") != 0)
        return *why = "unsupported Sec-WebSocket-Version (need 13)", 426;
    if (!key) return *why = "missing Sec-WebSocket-Key", 400;
    if (tf_ws_accept_key(key, acc) != 0)
        return *why = "Sec-WebSocket-Key is not base64 of 16 bytes", 400;
    *why = NULL;
    return 0;
}

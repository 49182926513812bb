/*
 * ws_frame.h - RFC 6455 wire protocol, pure functions over caller buffers:
 * frame header parse/encode, a message assembler (fragmentation, control
 * frames, masking rules, UTF-8 of text, size limits) and the opening
 * handshake helpers (Sec-WebSocket-Accept, upgrade request checks).
 *
 * Why our own framing rather than libwslay: wslay's event API owns the
 * output queue (wslay_event_queue_msg copies every message per connection
 * and hides the queue), but our back-pressure policy must inspect and drop
 * queued messages (oldest raw trades first, candles coalesced), and a server
 * frame is identical for every client (server frames are unmasked), so ws.c
 * encodes each broadcast once and shares the bytes among all watchers. The
 * parser below is small, checks every length before touching a field, and
 * has a fuzz target (tests/fuzz/fuzz_ws_frame.c).
 */
#ifndef TF_WS_FRAME_H
#define TF_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    TF_WS_OP_CONT = 0x0,
    TF_WS_OP_TEXT = 0x1,
    TF_WS_OP_BINARY = 0x2,
    TF_WS_OP_CLOSE = 0x8,
    TF_WS_OP_PING = 0x9,
    TF_WS_OP_PONG = 0xA,
};

/* Close codes we send. */
enum {
    TF_WS_CLOSE_NORMAL = 1000,
    TF_WS_CLOSE_GOING_AWAY = 1001,
    TF_WS_CLOSE_PROTOCOL = 1002,
    TF_WS_CLOSE_UNSUPPORTED = 1003,
    TF_WS_CLOSE_NO_STATUS = 1005, /* never on the wire: "close frame had no code" */
    TF_WS_CLOSE_BAD_DATA = 1007,
    TF_WS_CLOSE_POLICY = 1008,
    TF_WS_CLOSE_TOO_BIG = 1009,
    TF_WS_CLOSE_INTERNAL = 1011,
    TF_WS_CLOSE_TRY_AGAIN = 1013,
};

#define TF_WS_MAX_HEADER 14

typedef struct tf_ws_frame {
    int fin;
    int opcode;
    int masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;
} tf_ws_frame;

/*
 * Parses one frame header at buf[0..len). require_mask: 1 on the server
 * (client frames must be masked), 0 in a client (server frames must not be).
 * Returns the header length (> 0) with *f filled, 0 when more bytes are
 * needed, or -(close code) when the frame is invalid: -1002 (reserved bits,
 * unknown opcode, fragmented or long control frame, mask rule, non-minimal
 * or 64-bit-MSB length) or -1009 (payload longer than max_payload).
 * Does not look at the payload.
 */
int tf_ws_frame_parse(const uint8_t *buf, size_t len, int require_mask, uint64_t max_payload,
                      tf_ws_frame *f);

/* Writes a frame header into out (>= TF_WS_MAX_HEADER bytes); mask NULL for
 * server frames. Returns its length. The caller appends the (masked) payload. */
size_t tf_ws_frame_header(uint8_t *out, int opcode, int fin, uint64_t payload_len,
                          const uint8_t *mask);

/* XORs buf with the 4-byte mask, starting at payload offset `offset`. */
void tf_ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset);

/*
 * Message assembler for one connection. Feed it the connection's input
 * buffer; it consumes whole frames only (a frame is parsed once header and
 * payload are all there, so the caller's input buffer never needs more than
 * TF_WS_MAX_HEADER + max_message bytes).
 */
typedef struct tf_ws_rx {
    int require_mask;
    uint64_t max_message; /* payload bytes of one (reassembled) message */
    /* fragmented message being assembled (owned, malloc'd) */
    int in_message;
    int msg_opcode;
    uint8_t *msg;
    size_t msg_len, msg_cap;
    /* set on error */
    int close_code;
    const char *error; /* static text */
} tf_ws_rx;

enum {
    TF_WS_EV_NONE = 0, /* a fragment was absorbed; call again */
    TF_WS_EV_TEXT,
    TF_WS_EV_BINARY,
    TF_WS_EV_PING,
    TF_WS_EV_PONG,
    TF_WS_EV_CLOSE,
};

typedef struct tf_ws_event {
    int type;
    /* TEXT/BINARY: the whole message; PING/PONG: payload; CLOSE: reason.
     * Borrowed: points into the caller's buffer or rx->msg, valid until the
     * next tf_ws_rx_next / tf_ws_rx_free. */
    const uint8_t *data;
    size_t len;
    int close_code; /* CLOSE: code received, TF_WS_CLOSE_NO_STATUS if none */
} tf_ws_event;

void tf_ws_rx_init(tf_ws_rx *rx, int require_mask, uint64_t max_message);
void tf_ws_rx_free(tf_ws_rx *rx);

/*
 * Consumes at most one frame from buf[0..len) (unmasking it in place).
 * Returns bytes consumed (> 0) with *ev filled, 0 when the frame is not
 * complete yet, or -1 on a protocol error with rx->close_code (1002, 1007,
 * 1009) and rx->error set; the connection must then be closed with that code.
 */
long tf_ws_rx_next(tf_ws_rx *rx, uint8_t *buf, size_t len, tf_ws_event *ev);

/* ---- opening handshake ---- */

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)), 28 chars
 * + NUL into out. Returns 0, or -1 when key is not base64 of 16 bytes. */
int tf_ws_accept_key(const char *key, char out[29]);

/* 1 if the comma-separated header value contains token (case-insensitive). */
int tf_ws_header_has_token(const char *value, const char *token);

/*
 * Checks an upgrade request. Any argument may be NULL (header absent).
 * Returns 0 when it is a valid RFC 6455 upgrade; otherwise an HTTP status
 * (400 bad request, 426 wrong/missing version) with a static message in *why.
 */
int tf_ws_check_upgrade(const char *method, int http_minor, const char *upgrade,
                        const char *connection, const char *version, const char *key,
                        const char **why);

#endif

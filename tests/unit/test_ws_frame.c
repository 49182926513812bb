/* test_ws_frame.c - RFC 6455 frame parser/encoder, message assembler and
 * handshake helpers (http/ws_frame.c). */
#include "http/ws_frame.h"

#include <stdlib.h>
#include <string.h>

#include "tf_test.h"

/* Builds a client (masked) frame into out; returns its length. */
static size_t client_frame(uint8_t *out, int op, int fin, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t hl = tf_ws_frame_header(out, op, fin, len, mask);
    memcpy(out + hl, payload, len);
    tf_ws_mask(out + hl, len, mask, 0);
    return hl + len;
}

static void header_roundtrip(void)
{
    uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 20};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        uint8_t h[TF_WS_MAX_HEADER];
        static const uint8_t mask[4] = {1, 2, 3, 4};
        size_t hl = tf_ws_frame_header(h, TF_WS_OP_BINARY, 1, lens[i], mask);
        tf_ws_frame f;
        TF_EQ_INT(tf_ws_frame_parse(h, hl, 1, UINT64_MAX >> 1, &f), (int)hl);
        TF_EQ_INT(f.payload_len, lens[i]);
        TF_EQ_INT(f.opcode, TF_WS_OP_BINARY);
        TF_EQ_INT(f.fin, 1);
        TF_EQ_INT(f.masked, 1);
        TF_CHECK(memcmp(f.mask, mask, 4) == 0);
        /* every truncated prefix asks for more */
        for (size_t k = 0; k < hl; k++) TF_EQ_INT(tf_ws_frame_parse(h, k, 1, UINT64_MAX >> 1, &f), 0);
        /* server side: unmasked */
        hl = tf_ws_frame_header(h, TF_WS_OP_TEXT, 0, lens[i], NULL);
        TF_EQ_INT(tf_ws_frame_parse(h, hl, 0, UINT64_MAX >> 1, &f), (int)hl);
        TF_EQ_INT(f.payload_len, lens[i]);
        TF_EQ_INT(f.fin, 0);
    }
}

static void header_errors(void)
{
    tf_ws_frame f;
    uint8_t b[16];
    /* unmasked client frame */
    size_t hl = tf_ws_frame_header(b, TF_WS_OP_TEXT, 1, 5, NULL);
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 1000, &f), -1002);
    /* reserved bit */
    static const uint8_t m[4] = {0, 0, 0, 0};
    hl = tf_ws_frame_header(b, TF_WS_OP_TEXT, 1, 5, m);
    b[0] |= 0x40;
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 1000, &f), -1002);
    /* reserved opcodes */
    for (int op = 3; op <= 0xF; op++) {
        if (op >= 8 && op <= 0xA) continue;
        hl = tf_ws_frame_header(b, op, 1, 0, m);
        TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 1000, &f), -1002);
    }
    /* fragmented control frame, long control frame */
    hl = tf_ws_frame_header(b, TF_WS_OP_PING, 0, 0, m);
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 1000, &f), -1002);
    hl = tf_ws_frame_header(b, TF_WS_OP_PING, 1, 126, m);
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 1000, &f), -1002);
    /* non-minimal lengths */
    uint8_t nm16[] = {0x81, 0x80 | 126, 0x00, 0x05, 0, 0, 0, 0};
    TF_EQ_INT(tf_ws_frame_parse(nm16, sizeof nm16, 1, 1000, &f), -1002);
    uint8_t nm64[] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0, 0, 0, 0};
    TF_EQ_INT(tf_ws_frame_parse(nm64, sizeof nm64, 1, UINT64_MAX, &f), -1002);
    uint8_t msb[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    TF_EQ_INT(tf_ws_frame_parse(msb, sizeof msb, 1, UINT64_MAX, &f), -1002);
    /* too big */
    hl = tf_ws_frame_header(b, TF_WS_OP_BINARY, 1, 70000, m);
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 1, 65536, &f), -1009);
    /* server frame must not be masked when parsed by a client */
    hl = tf_ws_frame_header(b, TF_WS_OP_TEXT, 1, 3, m);
    TF_EQ_INT(tf_ws_frame_parse(b, hl, 0, 1000, &f), -1002);
}

static void assembler(void)
{
    tf_ws_rx rx;
    tf_ws_rx_init(&rx, 1, 64);
    uint8_t buf[512];
    tf_ws_event ev;
    /* single text frame, every truncated prefix needs more */
    size_t n = client_frame(buf, TF_WS_OP_TEXT, 1, "hello", 5);
    uint8_t copy[512];
    for (size_t k = 0; k < n; k++) {
        memcpy(copy, buf, n);
        TF_EQ_INT(tf_ws_rx_next(&rx, copy, k, &ev), 0);
    }
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), (long)n);
    TF_EQ_INT(ev.type, TF_WS_EV_TEXT);
    TF_EQ_INT(ev.len, 5);
    TF_CHECK(memcmp(ev.data, "hello", 5) == 0);

    /* fragmented: "he" + ping + "llo" */
    size_t o = 0;
    o += client_frame(buf + o, TF_WS_OP_TEXT, 0, "he", 2);
    o += client_frame(buf + o, TF_WS_OP_PING, 1, "p", 1);
    o += client_frame(buf + o, TF_WS_OP_CONT, 1, "llo", 3);
    size_t at = 0;
    long r = tf_ws_rx_next(&rx, buf + at, o - at, &ev);
    TF_CHECK(r > 0);
    TF_EQ_INT(ev.type, TF_WS_EV_NONE);
    at += (size_t)r;
    r = tf_ws_rx_next(&rx, buf + at, o - at, &ev);
    TF_EQ_INT(ev.type, TF_WS_EV_PING);
    TF_EQ_INT(ev.len, 1);
    at += (size_t)r;
    r = tf_ws_rx_next(&rx, buf + at, o - at, &ev);
    TF_EQ_INT(ev.type, TF_WS_EV_TEXT);
    TF_EQ_INT(ev.len, 5);
    TF_CHECK(memcmp(ev.data, "hello", 5) == 0);
    at += (size_t)r;
    TF_EQ_INT(at, o);

    /* continuation without a message */
    n = client_frame(buf, TF_WS_OP_CONT, 1, "x", 1);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), -1);
    TF_EQ_INT(rx.close_code, 1002);
    tf_ws_rx_free(&rx);

    /* new message inside a fragmented one */
    tf_ws_rx_init(&rx, 1, 64);
    o = client_frame(buf, TF_WS_OP_TEXT, 0, "a", 1);
    o += client_frame(buf + o, TF_WS_OP_TEXT, 1, "b", 1);
    r = tf_ws_rx_next(&rx, buf, o, &ev);
    TF_CHECK(r > 0);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf + r, o - (size_t)r, &ev), -1);
    TF_EQ_INT(rx.close_code, 1002);
    tf_ws_rx_free(&rx);

    /* invalid UTF-8, also split across fragments */
    tf_ws_rx_init(&rx, 1, 64);
    n = client_frame(buf, TF_WS_OP_TEXT, 1, "\xc3\x28", 2);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), -1);
    TF_EQ_INT(rx.close_code, 1007);
    tf_ws_rx_free(&rx);
    tf_ws_rx_init(&rx, 1, 64);
    o = client_frame(buf, TF_WS_OP_TEXT, 0, "\xc3", 1); /* valid once joined */
    o += client_frame(buf + o, TF_WS_OP_CONT, 1, "\xa9", 1);
    r = tf_ws_rx_next(&rx, buf, o, &ev);
    TF_CHECK(r > 0);
    TF_CHECK(tf_ws_rx_next(&rx, buf + r, o - (size_t)r, &ev) > 0);
    TF_EQ_INT(ev.type, TF_WS_EV_TEXT);
    TF_EQ_INT(ev.len, 2);
    tf_ws_rx_free(&rx);

    /* message too big across fragments */
    tf_ws_rx_init(&rx, 1, 64);
    char big[40];
    memset(big, 'a', sizeof big);
    o = client_frame(buf, TF_WS_OP_TEXT, 0, big, 40);
    o += client_frame(buf + o, TF_WS_OP_CONT, 1, big, 40);
    r = tf_ws_rx_next(&rx, buf, o, &ev);
    TF_CHECK(r > 0);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf + r, o - (size_t)r, &ev), -1);
    TF_EQ_INT(rx.close_code, 1009);
    tf_ws_rx_free(&rx);

    /* close frames */
    tf_ws_rx_init(&rx, 1, 64);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "\x03\xe8" "bye", 5);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), (long)n);
    TF_EQ_INT(ev.type, TF_WS_EV_CLOSE);
    TF_EQ_INT(ev.close_code, 1000);
    TF_EQ_INT(ev.len, 3);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "", 0);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), (long)n);
    TF_EQ_INT(ev.close_code, TF_WS_CLOSE_NO_STATUS);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "\x03", 1);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), -1);
    TF_EQ_INT(rx.close_code, 1002);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "\x03\xed", 2); /* 1005 may not be sent */
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), -1);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "\x03\xe8\xff", 3);
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), -1);
    TF_EQ_INT(rx.close_code, 1007);
    n = client_frame(buf, TF_WS_OP_CLOSE, 1, "\x0f\xa0", 2); /* 4000: private use, fine */
    TF_EQ_INT(tf_ws_rx_next(&rx, buf, n, &ev), (long)n);
    TF_EQ_INT(ev.close_code, 4000);
    tf_ws_rx_free(&rx);
}

static void handshake(void)
{
    char out[29];
    /* RFC 6455 section 1.3 example */
    TF_EQ_INT(tf_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    TF_EQ_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    TF_EQ_INT(tf_ws_accept_key("short", out), -1);
    TF_EQ_INT(tf_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=A", out), -1);
    TF_EQ_INT(tf_ws_accept_key("!!!!!!!!!!!!!!!!!!!!!!==", out), -1);
    TF_EQ_INT(tf_ws_header_has_token("keep-alive, Upgrade", "upgrade"), 1);
    TF_EQ_INT(tf_ws_header_has_token("keep-alive", "upgrade"), 0);
    TF_EQ_INT(tf_ws_header_has_token("upgrades", "upgrade"), 0);
    const char *why;
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, "websocket", "Upgrade", "13", k, &why), 0);
    TF_EQ_INT(tf_ws_check_upgrade("POST", 1, "websocket", "Upgrade", "13", k, &why), 400);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 0, "websocket", "Upgrade", "13", k, &why), 400);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, NULL, "Upgrade", "13", k, &why), 426);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, "websocket", "close", "13", k, &why), 400);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, "websocket", "Upgrade", "8", k, &why), 426);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, "websocket", "Upgrade", "13", NULL, &why), 400);
    TF_EQ_INT(tf_ws_check_upgrade("GET", 1, "WebSocket", "keep-alive, upgrade", "13", "bad", &why), 400);
}

int main(void)
{
    header_roundtrip();
    header_errors();
    assembler();
    handshake();
    TF_TEST_MAIN_END();
}

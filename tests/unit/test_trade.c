/* test_trade.c - the one input rule for a ticker (tf_ticker_norm): any case
 * in, upper case out, the same validity as tf_ticker_valid, never more than
 * TF_TICKER_MAX bytes written. */
#include "event/trade.h"

#include "tf_test.h"

int main(void)
{
    char out[TF_TICKER_MAX];
    TF_EQ_INT(tf_ticker_norm("aapl", 4, out), 0);
    TF_EQ_STR(out, "AAPL");
    TF_EQ_INT(tf_ticker_norm("brk.b", 5, out), 0);
    TF_EQ_STR(out, "BRK.B");
    TF_EQ_INT(tf_ticker_norm("005930", 6, out), 0);
    TF_EQ_STR(out, "005930");
    TF_EQ_INT(tf_ticker_norm("MsFt-x", 6, out), 0);
    TF_EQ_STR(out, "MSFT-X");
    /* not NUL-terminated input: only len bytes are read */
    TF_EQ_INT(tf_ticker_norm("ko,pep", 2, out), 0);
    TF_EQ_STR(out, "KO");
    /* 15 is the longest, 16 is refused */
    TF_EQ_INT(tf_ticker_norm("abcdefghijklmno", 15, out), 0);
    TF_EQ_STR(out, "ABCDEFGHIJKLMNO");
    TF_EQ_INT(tf_ticker_norm("abcdefghijklmnop", 16, out), -1);
    TF_EQ_STR(out, "");
    /* refused: empty, space, quote, NUL inside, non-ASCII letters */
    const char *badv[] = {"", "a b", "a'b", "a\0b", "\xc3\xa9t", "a_b", "a,b"};
    const size_t badl[] = {0, 3, 3, 3, 3, 3, 3};
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++) {
        out[0] = 'x';
        TF_EQ_INT(tf_ticker_norm(badv[i], badl[i], out), -1);
        TF_EQ_STR(out, "");
    }
    /* the same validity as the stored form's rule */
    for (int c = 1; c < 256; c++) {
        char s[2] = {(char)c, 0}, u = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        TF_EQ_INT(tf_ticker_norm(s, 1, out) == 0, tf_ticker_valid(&u, 1));
    }
    TF_TEST_MAIN_END();
}

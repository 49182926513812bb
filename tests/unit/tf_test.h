/*
 * tf_test.h - assertion macros for unit tests: print both values and where,
 * survive NDEBUG, and count failures; TF_TEST_MAIN_END prints the summary line
 * "N passed, N failed" and sets the exit code. A test program that made no
 * check at all fails too: a test that cannot fail is worse than none.
 */
#ifndef TF_TEST_H
#define TF_TEST_H

#include <stdio.h>
#include <string.h>

static int tf_t_passed, tf_t_failed;

#define TF_CHECK(cond)                                                                 \
    do {                                                                               \
        if (cond) tf_t_passed++;                                                       \
        else {                                                                         \
            tf_t_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define TF_EQ_INT(a, b)                                                                          \
    do {                                                                                         \
        long long tf_a_ = (long long)(a), tf_b_ = (long long)(b);                                \
        if (tf_a_ == tf_b_) tf_t_passed++;                                                       \
        else {                                                                                   \
            tf_t_failed++;                                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
                    tf_a_, tf_b_);                                                               \
        }                                                                                        \
    } while (0)

#define TF_EQ_STR(a, b)                                                                              \
    do {                                                                                             \
        const char *tf_a_ = (a), *tf_b_ = (b);                                                       \
        if (tf_a_ && tf_b_ && strcmp(tf_a_, tf_b_) == 0) tf_t_passed++;                              \
        else {                                                                                       \
            tf_t_failed++;                                                                           \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    tf_a_ ? tf_a_ : "(null)", tf_b_ ? tf_b_ : "(null)");                             \
        }                                                                                            \
    } while (0)

#define TF_TEST_MAIN_END()                                                  \
    do {                                                                    \
        printf("%d passed, %d failed\n", tf_t_passed, tf_t_failed);         \
        if (tf_t_passed + tf_t_failed == 0)                                 \
            fprintf(stderr, "%s: no check was made\n", __FILE__);           \
        return tf_t_failed || tf_t_passed == 0 ? 1 : 0;                     \
    } while (0)

#endif

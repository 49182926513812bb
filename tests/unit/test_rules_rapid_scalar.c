/*
 * test_rules_rapid_scalar.c - test_rules_rapid.c with rules.c's scalar
 * rapid-move scan (TF_RULES_NO_SIMD): the form used where there is no SSE2
 * must match the plain scan too.
 */
#define TF_RULES_NO_SIMD 1
#include "test_rules_rapid.c"

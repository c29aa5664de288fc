/* check.h: the C tests' assertions (libuv's task.h in spirit): CHECK fails the running test
 * function with its line and a message; OK records a pass; each test file's main prints
 * "N passed, N failed" with the counters. */
#ifndef SH_TEST_CHECK_H
#define SH_TEST_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            printf("not ok %s: line %d: %s: ", __func__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
            failed++;                                                      \
            return;                                                        \
        }                                                                  \
    } while (0)

#define OK() do { printf("ok %s\n", __func__); passed++; } while (0)

#endif

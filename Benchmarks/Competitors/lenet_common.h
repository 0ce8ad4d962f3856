// Shared by lenet_batch1.c and lenet_slabs.c: a clock, a seeded generator, a comparison for
// qsort, and LeNet-300-100 layers in Topiary's CSR form with random masks.
#ifndef LENET_COMMON_H
#define LENET_COMMON_H
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "CSparseKernels.h"

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static uint64_t state = 88172645463325252ull;
static double uniform(void) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0;
}

static int ascending(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct { tsk_csr w; int64_t splits[17]; float *bias; } layer;

// An m×k layer, each weight kept with probability 1 − sparsity, its rows split into `parts`
// (at most 16) ranges of about equal work for the pool; zero biases.
static layer make(int64_t m, int64_t k, double sparsity, int64_t parts) {
    int64_t *offsets = malloc(sizeof(int64_t) * (size_t)(m + 1));
    uint16_t *indices = malloc(sizeof(uint16_t) * (size_t)(m * k));
    float *values = malloc(sizeof(float) * (size_t)(m * k));
    int64_t n = 0;
    offsets[0] = 0;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < k; j++)
            if (uniform() >= sparsity) { indices[n] = (uint16_t)j; values[n] = (float)(uniform() - 0.5); n++; }
        offsets[i + 1] = n;
    }
    layer l = {{m, k, offsets, indices, 2, values, NULL}, {0}, calloc((size_t)m, sizeof(float))};
    tsk_split_rows(offsets, m, parts, 8, l.splits);
    return l;
}
#endif

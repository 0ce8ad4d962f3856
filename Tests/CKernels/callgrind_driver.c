// Fixed products for `scripts/callgrind-check`: each cell's kernel call runs with callgrind
// collecting and is dumped under its own name, so that the script can read the instructions the
// kernels executed in that cell and nothing else (set-up, warm-up and the driver are not counted).
//
//   callgrind_driver VARIANT...   (variant numbers, as in CSparseKernels.h)
//
// Cells: W of 300×784 and 1024×1024 at 90% and 95% sparsity (random positions, a fixed seed),
// batch 1 (X a vector, ldx 1) and 128, ReLU with bias, one thread, 16-bit indices (what Topiary
// uses for these shapes). A warm-up call first builds what the kernels cache (the batch-1 copy of
// the matrix, the panel scratch), so the counted call is the steady state. A variant this CPU
// (as valgrind presents it) does not support prints `skip VARIANT` and is not run.
#include "CSparseKernels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <valgrind/callgrind.h>

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s) { return (float)((double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0)); }

static void *must(void *p) {
    if (!p) {
        fprintf(stderr, "callgrind_driver: out of memory\n");
        exit(2);
    }
    return p;
}

static const char *variant_name(int v) {
    static const char *names[] = {"scalar", "avx2", "avx512", "neon"};
    static char other[24];
    if (v >= 0 && v < 4) return names[v];
    snprintf(other, sizeof other, "variant%d", v);
    return other;
}

int main(int argc, char **argv) {
    static const int64_t shapes[][2] = {{300, 784}, {1024, 1024}};
    static const int sparsities[] = {90, 95};
    static const int64_t batches[] = {1, 128};
    if (argc < 2) {
        fprintf(stderr, "usage: %s VARIANT...\n", argv[0]);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        const int variant = atoi(argv[a]);
        if (!tsk_variant_supported(variant)) {
            printf("skip %s\n", variant_name(variant));
            continue;
        }
        for (int s = 0; s < 2; s++) {
            for (int d = 0; d < 2; d++) {
                const int64_t m = shapes[s][0], k = shapes[s][1];
                uint64_t rng = 20261205u + (uint64_t)(s * 100 + sparsities[d]);
                int64_t *off = must(malloc(sizeof(int64_t) * (size_t)(m + 1)));
                uint16_t *ind = must(malloc(sizeof(uint16_t) * (size_t)(m * k)));
                float *val = must(malloc(sizeof(float) * (size_t)(m * k)));
                const float keep = (float)(100 - sparsities[d]) / 100.0f;
                int64_t n = 0;
                for (int64_t i = 0; i < m; i++) {
                    off[i] = n;
                    for (int64_t j = 0; j < k; j++) {
                        if (uniform(&rng) >= keep) continue;
                        ind[n] = (uint16_t)j;
                        val[n++] = 2.0f * uniform(&rng) - 1.0f;
                    }
                }
                off[m] = n;
                float *bias = must(malloc(sizeof(float) * (size_t)m));
                for (int64_t i = 0; i < m; i++) bias[i] = uniform(&rng) - 0.5f;
                int64_t splits[2];
                tsk_split_rows(off, m, 1, 8, splits);
                for (int b = 0; b < 2; b++) {
                    const int64_t batch = batches[b];
                    float *x = must(aligned_alloc(64, sizeof(float) * (size_t)(k * batch)));
                    float *y = must(aligned_alloc(64, sizeof(float) * (size_t)(m * batch)));
                    for (int64_t i = 0; i < k * batch; i++) x[i] = 2.0f * uniform(&rng) - 1.0f;
                    tsk_csr w = {m, k, off, ind, 2, val, NULL};
                    CALLGRIND_START_INSTRUMENTATION;
                    tsk_spmm(variant, 1, &w, x, batch, y, batch, batch, bias, TSK_ACT_RELU, splits, 1);
                    CALLGRIND_TOGGLE_COLLECT;
                    tsk_spmm(variant, 1, &w, x, batch, y, batch, batch, bias, TSK_ACT_RELU, splits, 1);
                    CALLGRIND_TOGGLE_COLLECT;
                    char name[96];
                    snprintf(name, sizeof name, "%s %lldx%lld %d%% b%lld", variant_name(variant), (long long)m,
                             (long long)k, sparsities[d], (long long)batch);
                    CALLGRIND_DUMP_STATS_AT(name);
                    CALLGRIND_STOP_INSTRUMENTATION;
                    // The result is used, so the call cannot be dropped; its value is checked elsewhere.
                    double sum = 0;
                    for (int64_t i = 0; i < m * batch; i++) sum += y[i];
                    printf("cell %s (nnz %lld, sum %.6g)\n", name, (long long)n, sum);
                    tsk_csr_release(&w);
                    free(x);
                    free(y);
                }
                free(bias);
                free(off);
                free(ind);
                free(val);
            }
        }
    }
    return 0;
}

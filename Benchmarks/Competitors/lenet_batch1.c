// LeNet-300-100's three layers (300×784, 100×300, 10×100, random masks) at batch 1 through
// Topiary's C kernels, repeated: the median time of one forward pass and the pool's counters.
// Build (from this folder) and run, e.g. 95% sparsity on 2 threads:
//   clang -O2 -I../../Sources/CSparseKernels/include -nostdlib -r ../../Sources/CSparseKernels/*.c -o kernels.o
//   gcc -O2 -I../../Sources/CSparseKernels/include lenet_batch1.c kernels.o -o lenet_batch1 -lpthread -lm
//   ./lenet_batch1 0.95 2
// Not part of the package or of CI.
#include <stdio.h>
#include "lenet_common.h"

int main(int argc, char **argv) {
    const double sparsity = argc > 1 ? atof(argv[1]) : 0.95;
    const int threads = argc > 2 ? atoi(argv[2]) : 1;
    const int v = tsk_best_variant();
    layer l1 = make(300, 784, sparsity, 16), l2 = make(100, 300, sparsity, 16), l3 = make(10, 100, sparsity, 16);
    float x[784], h1[300], h2[100], out[10];
    for (int j = 0; j < 784; j++) x[j] = (float)uniform();
    enum { RUNS = 21, CALLS = 20000 };
    double medians[RUNS];
    for (int r = 0; r < RUNS; r++) {
        const double t0 = now_ns();
        for (int i = 0; i < CALLS; i++) {
            tsk_spmm(v, threads, &l1.w, x, 1, h1, 1, 1, l1.bias, TSK_ACT_RELU, l1.splits, 16);
            tsk_spmm(v, threads, &l2.w, h1, 1, h2, 1, 1, l2.bias, TSK_ACT_RELU, l2.splits, 16);
            tsk_spmm(v, threads, &l3.w, h2, 1, out, 1, 1, l3.bias, TSK_ACT_IDENTITY, l3.splits, 16);
        }
        medians[r] = (now_ns() - t0) / CALLS;
    }
    qsort(medians, RUNS, sizeof(double), ascending);
    const tsk_pool_stats s = tsk_pool_get_stats();
    printf("sparsity %.2f, %d thread(s): %.3f us per forward pass (median of %d runs of %d; fastest %.3f); "
           "pool: %llu jobs, %llu run alone by choice, %llu delayed workers, %llu back-offs\n",
           sparsity, threads, medians[RUNS / 2] / 1e3, RUNS, CALLS, medians[0] / 1e3,
           (unsigned long long)s.jobs, (unsigned long long)s.alone, (unsigned long long)s.delays,
           (unsigned long long)s.stalls);
    return 0;
}

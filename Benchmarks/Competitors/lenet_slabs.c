// LeNet-300-100's three layers (300×784, 100×300, 10×100, random masks) on a batch of 128 cut into
// two slabs of 64 samples, one per thread, the way a compiled network runs them with two threads:
// transpose the slab's input, three panel products, transpose the output. Prints the median time
// of the two slabs on two threads, of one slab on one thread, and of its first layer.
// Build (from this folder) and run, e.g. 95% sparsity:
//   clang -O2 -I../../Sources/CSparseKernels/include -nostdlib -r ../../Sources/CSparseKernels/*.c -o kernels.o
//   gcc -O2 -I../../Sources/CSparseKernels/include lenet_slabs.c kernels.o -o lenet_slabs -lpthread -lm
//   ./lenet_slabs 0.95
// Not part of the package or of CI.
#include <stdio.h>
#include "lenet_common.h"

enum { SLAB = 64, RUNS = 2001 };
static layer l1, l2, l3;
static float *input, *xs[2], *ys[2], *output;
static int variant;

// One slab through the network on the calling thread (as each thread of a compiled plan does).
static void slab(void *ctx, int64_t s) {
    (void)ctx;
    float *x = xs[s], *y = ys[s];
    tsk_transpose(input + s * SLAB * 784, SLAB, 784, x);
    tsk_spmm(variant, 1, &l1.w, x, SLAB, y, SLAB, SLAB, l1.bias, TSK_ACT_RELU, l1.splits, 1);
    tsk_spmm(variant, 1, &l2.w, y, SLAB, x, SLAB, SLAB, l2.bias, TSK_ACT_RELU, l2.splits, 1);
    tsk_spmm(variant, 1, &l3.w, x, SLAB, y, SLAB, SLAB, l3.bias, TSK_ACT_IDENTITY, l3.splits, 1);
    tsk_transpose(y, 10, SLAB, output + s * SLAB * 10);
}

int main(int argc, char **argv) {
    const double sparsity = argc > 1 ? atof(argv[1]) : 0.95;
    variant = tsk_best_variant();
    l1 = make(300, 784, sparsity, 1); l2 = make(100, 300, sparsity, 1); l3 = make(10, 100, sparsity, 1);
    input = aligned_alloc(64, sizeof(float) * 2 * SLAB * 784);
    output = aligned_alloc(64, sizeof(float) * 2 * SLAB * 10);
    for (int s = 0; s < 2; s++) {
        xs[s] = aligned_alloc(64, sizeof(float) * SLAB * 784);
        ys[s] = aligned_alloc(64, sizeof(float) * SLAB * 784);
    }
    for (int j = 0; j < 2 * SLAB * 784; j++) input[j] = (float)uniform();
    static double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        const double t0 = now_ns();
        tsk_parallel_for(2, 2, (int64_t)1 << 40, slab, NULL);  // a large job: always the pool
        t[r] = now_ns() - t0;
    }
    qsort(t, RUNS, sizeof(double), ascending);
    printf("sparsity %.2f: two slabs on two threads %.2f us (%.0f samples/s)", sparsity, t[RUNS / 2] / 1e3,
           2 * SLAB / (t[RUNS / 2] / 1e9));
    for (int r = 0; r < RUNS; r++) {
        const double t0 = now_ns();
        slab(NULL, 0);
        t[r] = now_ns() - t0;
    }
    qsort(t, RUNS, sizeof(double), ascending);
    printf("; one slab on one thread %.2f us", t[RUNS / 2] / 1e3);
    for (int r = 0; r < RUNS; r++) {
        const double t0 = now_ns();
        tsk_spmm(variant, 1, &l1.w, xs[0], SLAB, ys[0], SLAB, SLAB, l1.bias, TSK_ACT_RELU, l1.splits, 1);
        t[r] = now_ns() - t0;
    }
    qsort(t, RUNS, sizeof(double), ascending);
    printf(", its first layer %.2f us\n", t[RUNS / 2] / 1e3);
    return 0;
}

// The sliced-ELLPACK SpMV, written once for every instruction set that has it: included by
// sell.c after simd.h selected one (no include guard, on purpose). A slice holds TSK_LANES rows,
// one per lane; step j of lane r at TSK_LANES·j + r, an even number of steps (see sell.c).
// A step is one weight load, LANES x values assembled from scalar loads and one FMA; two steps
// per iteration into two accumulators; a slice ends with LANES scalar stores through the
// permutation, with bias and activation. A copy larger than TSK_SELL_PREFETCH_BYTES (read from
// memory, not cache) is prefetched TSK_SELL_PREFETCH entries ahead, each line once for AVX-512.
// Measured (C microbenchmark, 1 thread, 4096² at 90%, caches emptied by reading 96 MB between
// runs, medians of 41): AVX-512 0.79–0.99 ms without, 0.63–0.71 with (the gathered CSR it
// replaced: 0.69–0.73); AVX2 0.76–0.80 against 0.59–0.73. Smaller copies run without: at
// 300×784 it cost 4–7%.

#if TSK_SELL
#define TSK_SELL_KERNEL(IT, PF)                                                                     \
    TSK_KERNEL static void TSK_N(sell_##IT##_##PF)(const tsk_sell *s, const float *x, float *y,           \
                                            int64_t ldy, const float *bias, int act, int64_t q0,   \
                                            int64_t q1) {                                           \
        enum { L = TSK_LANES };                                                                     \
        for (int64_t q = q0; q < q1; q++) {                                                         \
            const float *v = s->values + s->offsets[q];                                             \
            const IT *ind = (const IT *)s->indices + s->offsets[q];                                 \
            const int64_t n = s->offsets[q + 1] - s->offsets[q];                                    \
            TSK_VEC a0 = VZERO(), a1 = VZERO();                                                     \
            for (int64_t p = 0; p < n; p += 2 * L) {                                                \
                if (PF) {                                                                           \
                    __builtin_prefetch(v + p + TSK_SELL_PREFETCH, 0, 0);                            \
                    __builtin_prefetch(v + p + L + TSK_SELL_PREFETCH, 0, 0);                        \
                    __builtin_prefetch(ind + p + TSK_SELL_PREFETCH, 0, 0);                          \
                }                                                                                   \
                a0 = VFMA(VLOAD(v + p), TSK_N(vx_##IT)(x, ind + p), a0);                            \
                a1 = VFMA(VLOAD(v + p + L), TSK_N(vx_##IT)(x, ind + p + L), a1);                    \
            }                                                                                       \
            float t[L];                                                                             \
            VSTORE(t, VADD(a0, a1));                                                                \
            const int32_t *perm = s->perm + L * q;                                                  \
            for (int r = 0; r < L; r++) {                                                           \
                const int64_t row = perm[r];                                                        \
                if (row >= 0) y[row * ldy] = tsk_act_scalar(t[r] + (bias ? bias[row] : 0.0f), act); \
            }                                                                                       \
        }                                                                                           \
    }

TSK_SELL_KERNEL(uint16_t, 0)
TSK_SELL_KERNEL(uint16_t, 1)
TSK_SELL_KERNEL(uint32_t, 0)
TSK_SELL_KERNEL(uint32_t, 1)
#undef TSK_SELL_KERNEL

const tsk_sell_fn TSK_N(tsk_sell)[2][2] = {
    {TSK_N(sell_uint16_t_0), TSK_N(sell_uint16_t_1)},
    {TSK_N(sell_uint32_t_0), TSK_N(sell_uint32_t_1)},
};
#else
const tsk_sell_fn TSK_N(tsk_sell)[2][2] = {{NULL, NULL}, {NULL, NULL}};
#endif

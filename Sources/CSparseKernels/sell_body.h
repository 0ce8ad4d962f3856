// The sliced-ELLPACK SpMV, written once for every instruction set that has it: included by
// sell.c after simd.h selected one (no include guard, on purpose). A slice holds TSK_LANES rows,
// one per lane; step j of lane r at TSK_LANES·j + r, an even number of steps (see sell.c).
// A step is one weight load, LANES x values assembled from scalar loads and one FMA; two steps
// per iteration into two accumulators; a slice ends with LANES scalar stores through the
// permutation, with bias and activation.

#if TSK_SELL
#define TSK_SELL_KERNEL(IT)                                                                         \
    TSK_KERNEL static void TSK_N(sell_##IT)(const tsk_sell *s, const float *x, float *y,           \
                                            int64_t ldy, const float *bias, int act, int64_t q0,   \
                                            int64_t q1) {                                           \
        enum { L = TSK_LANES };                                                                     \
        for (int64_t q = q0; q < q1; q++) {                                                         \
            const float *v = s->values + s->offsets[q];                                             \
            const IT *ind = (const IT *)s->indices + s->offsets[q];                                 \
            const int64_t n = s->offsets[q + 1] - s->offsets[q];                                    \
            TSK_VEC a0 = VZERO(), a1 = VZERO();                                                     \
            for (int64_t p = 0; p < n; p += 2 * L) {                                                \
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

TSK_SELL_KERNEL(uint16_t)
TSK_SELL_KERNEL(uint32_t)
#undef TSK_SELL_KERNEL

const tsk_sell_fn TSK_N(tsk_sell)[2] = {TSK_N(sell_uint16_t), TSK_N(sell_uint32_t)};
#else
const tsk_sell_fn TSK_N(tsk_sell)[2] = {NULL, NULL};
#endif

// The CSR kernels, written once for every instruction set: included by spmm.c after simd.h
// selected one (no include guard, on purpose). Everything here is at TSK_LANES lanes.
//
// Batch > 1: the batch is vectorised; a row's non-zeros are swept once per group of up to 8
// vectors of columns (8 accumulators), the weight broadcast, the X rows loaded straight from
// memory; a last group under one vector runs masked. Large batches read X packed in panels
// (`TSK_N(panels_*)`). Batch 1 with `ldx == 1` (`TSK_N(spmv_*)`): x assembled LANES at a time from
// scalar loads into two accumulators; the sets with a SELL copy (sell.c) run that instead, and
// this CSR form only when the copy could not be built.

// One pass over a row's non-zeros for NACC vectors of batch columns; with PF the X row of the
// non-zero TSK_PREFETCH ahead is prefetched (up to `last`, the chunk's last non-zero).
#define TSK_PASS(IT, NACC, PF)                                                                      \
    TSK_INLINE void TSK_N(pass_##IT##_##NACC##_##PF)(const IT *ind, const float *val, int64_t s,   \
                                                    int64_t e, int64_t last, const float *x,       \
                                                    int64_t ldx, float *yr, float b, int act) {    \
        TSK_VEC acc[NACC];                                                                          \
        for (int k = 0; k < NACC; k++) acc[k] = VZERO();                                            \
        for (int64_t p = s; p < e; p++) {                                                           \
            if (PF) {                                                                               \
                const int64_t q = p + TSK_PREFETCH < last ? p + TSK_PREFETCH : last;                \
                __builtin_prefetch(x + (int64_t)ind[q] * ldx, 0, 3);                                \
            }                                                                                       \
            const TSK_VEC wv = VBCAST(val[p]);                                                      \
            const float *xr = x + (int64_t)ind[p] * ldx;                                            \
            for (int k = 0; k < NACC; k++) acc[k] = VFMA(wv, VLOAD(xr + TSK_LANES * k), acc[k]);    \
        }                                                                                           \
        const TSK_VEC bv = VBCAST(b);                                                               \
        for (int k = 0; k < NACC; k++) VSTORE(yr + TSK_LANES * k, TSK_N(vact)(VADD(acc[k], bv), act)); \
    }

TSK_PASS(uint16_t, 8, 0)
TSK_PASS(uint16_t, 8, 1)
TSK_PASS(uint16_t, 4, 0)
TSK_PASS(uint16_t, 4, 1)
TSK_PASS(uint16_t, 2, 0)
TSK_PASS(uint16_t, 2, 1)
TSK_PASS(uint16_t, 1, 0)
TSK_PASS(uint16_t, 1, 1)
TSK_PASS(uint32_t, 8, 0)
TSK_PASS(uint32_t, 8, 1)
TSK_PASS(uint32_t, 4, 0)
TSK_PASS(uint32_t, 4, 1)
TSK_PASS(uint32_t, 2, 0)
TSK_PASS(uint32_t, 2, 1)
TSK_PASS(uint32_t, 1, 0)
TSK_PASS(uint32_t, 1, 1)
#undef TSK_PASS

// Batch 1, CSR: x assembled LANES at a time, two accumulators, a scalar tail per row.
#define TSK_SPMV(IT)                                                                                \
    TSK_INLINE void TSK_N(spmv_##IT)(const tsk_csr *w, const float *x, float *y, int64_t ldy,       \
                                     const float *bias, int act, int64_t r0, int64_t r1) {          \
        const IT *ind = (const IT *)w->indices;                                                     \
        const float *val = w->values;                                                               \
        const int64_t *off = w->offsets;                                                            \
        for (int64_t i = r0; i < r1; i++) {                                                         \
            const int64_t e = off[i + 1];                                                           \
            int64_t p = off[i];                                                                     \
            TSK_VEC a0 = VZERO(), a1 = VZERO();                                                     \
            for (; p + 2 * TSK_LANES <= e; p += 2 * TSK_LANES) {                                    \
                a0 = VFMA(VLOAD(val + p), TSK_N(vx_##IT)(x, ind + p), a0);                          \
                a1 = VFMA(VLOAD(val + p + TSK_LANES), TSK_N(vx_##IT)(x, ind + p + TSK_LANES), a1);  \
            }                                                                                       \
            float t[TSK_LANES];                                                                     \
            VSTORE(t, VADD(a0, a1));                                                                \
            float s = 0.0f;                                                                         \
            for (int k = 0; k < TSK_LANES; k++) s += t[k];                                          \
            for (; p < e; p++) s += val[p] * x[ind[p]];                                             \
            y[i * ldy] = tsk_act_scalar(s + (bias ? bias[i] : 0.0f), act);                          \
        }                                                                                           \
    }

TSK_SPMV(uint16_t)
TSK_SPMV(uint32_t)
#undef TSK_SPMV

#if TSK_PANEL_COLUMNS > 0
// Large batches: X comes packed in panels of 8 vectors of columns (4 for AVX-512) (panel t is K × PANEL floats,
// contiguous, see pack.c), and each panel is swept over all rows of the chunk before the next. A
// panel stays in L2 while W streams through once per panel, the rows of a panel never alias in L1
// the way rows of a power-of-two-wide X do, and the X row of the non-zero TSK_PREFETCH ahead is
// prefetched (its column is known), which hides the L2 latency of the random row order.
// The non-zeros of a row go four at a time: one index load for the four (16-bit indices come four
// to a 64-bit word) and one for the four whose X rows are prefetched, each prefetch issued just
// before one non-zero's FMAs.
// Measured (AVX2, 1 thread, 4096×4096 at 90%, B = 128): unpacked 35 ms; panels 37 ms without
// prefetch, 29 ms prefetching all 4 lines of the row, 21 ms prefetching its first line only (the
// hardware prefetcher follows with the rest, and 3 fewer instructions per non-zero matter more:
// with X in L1 the kernel is bound by issuing loads); distance 8–16 best, 12 kept. Four non-zeros
// per index load against one (AVX2, 1 thread, B = 128): 300×784 at 90% 0.71 → 0.66 ns per FMA,
// at 95% 0.79 → 0.73; 1024×1024 at 90% 0.78 → 0.64.
// The accumulators (one per vector of the panel: 8, or 4 for AVX-512) are named variables
// (a0 … a7), not an array, so that they stay in registers through the row's tail and the stores.
#if TSK_PANEL_COLUMNS == 8 * TSK_LANES
#define TSK_EACH8(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7)
#elif TSK_PANEL_COLUMNS == 4 * TSK_LANES
#define TSK_EACH8(OP) OP(0) OP(1) OP(2) OP(3)
#else
#error "a panel is 4 or 8 vectors"
#endif
#define TSK_PANEL_FMA(k_) a##k_ = VFMA(wv_, VLOADA(xr_ + TSK_LANES * k_), a##k_);
#define TSK_PANEL_NZ(V, XR)                                                                         \
    do {                                                                                            \
        const TSK_VEC wv_ = VBCAST(*(V));                                                           \
        const float *xr_ = (XR);                                                                    \
        TSK_EACH8(TSK_PANEL_FMA)                                                                    \
    } while (0)
#define TSK_PANEL_STORE(k_) VSTORE(yr + TSK_LANES * k_, TSK_N(vact)(VADD(a##k_, bv), act));

#define TSK_PANELS(IT)                                                                              \
    /* Not inlined: inside the row kernel it ran short of registers (a pointer reloaded from */  \
    /* the stack per non-zero: 3.5% more instructions, callgrind, AVX2, 300×784, B = 128). */      \
    TSK_KERNEL __attribute__((noinline)) static void TSK_N(panels_##IT)(const tsk_csr *w, const float *xp, int64_t panels, float *y, \
                                       int64_t ldy, const float *bias, int act, int64_t r0,         \
                                       int64_t r1) {                                                \
        enum { PW = TSK_PANEL_COLUMNS };                                                            \
        const IT *ind = (const IT *)w->indices;                                                     \
        const float *val = w->values;                                                               \
        const int64_t *off = w->offsets;                                                            \
        const int64_t k = w->columns, end = off[r1];                                                \
        for (int64_t t = 0; t < panels; t++) {                                                      \
            const float *xb = xp + t * k * PW;                                                      \
            for (int64_t i = r0; i < r1; i++) {                                                     \
                TSK_VEC a0 = VZERO(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
                (void)a4; (void)a5; (void)a6; (void)a7;                                             \
                int64_t p = off[i];                                                                 \
                const int64_t e = off[i + 1];                                                       \
                for (; p + 4 <= e; p += 4) {                                                        \
                    int64_t c[4], d[4];                                                             \
                    tsk_idx4_##IT(ind + p, c);                                                      \
                    /* Near the end of the chunk the prefetch re-touches the current rows. */       \
                    tsk_idx4_##IT(ind + (p + TSK_PREFETCH + 4 <= end ? p + TSK_PREFETCH : p), d);   \
                    for (int u = 0; u < 4; u++) {                                                   \
                        __builtin_prefetch(xb + d[u] * PW, 0, 3);                                   \
                        TSK_PANEL_NZ(val + p + u, xb + c[u] * PW);                                  \
                    }                                                                               \
                }                                                                                   \
                for (; p < e; p++) TSK_PANEL_NZ(val + p, xb + (int64_t)ind[p] * PW);                \
                const TSK_VEC bv = VBCAST(bias ? bias[i] : 0.0f);                                   \
                float *yr = y + i * ldy + t * PW;                                                   \
                TSK_EACH8(TSK_PANEL_STORE)                                                          \
            }                                                                                       \
        }                                                                                           \
    }

TSK_PANELS(uint16_t)
TSK_PANELS(uint32_t)
#undef TSK_PANELS
#undef TSK_PANEL_NZ
#undef TSK_PANEL_FMA
#undef TSK_PANEL_STORE
#undef TSK_EACH8
#endif

// Rows r0 ..< r1 of Y: the packed panels first (if any), then the columns after them in groups
// of 8, 4, 2 and 1 vectors and a masked tail. Per column the same operations in the same order
// whichever path runs it (FMAs in the row's order, then the bias, then the activation), so a
// column gives the same bits packed or not, whatever the thread count chose.
#define TSK_ROWS(IT, PF)                                                                            \
    TSK_KERNEL static void TSK_N(rows_##IT##_##PF)(const tsk_csr *w, const float *x, int64_t ldx,  \
                                                   float *y, int64_t ldy, int64_t batch,            \
                                                   const float *bias, int act, int64_t r0,          \
                                                   int64_t r1, const float *xp, int64_t panels) {   \
        const IT *ind = (const IT *)w->indices;                                                     \
        const float *val = w->values;                                                               \
        const int64_t *off = w->offsets;                                                            \
        if (batch == 1 && ldx == 1) {                                                               \
            TSK_N(spmv_##IT)(w, x, y, ldy, bias, act, r0, r1);                                      \
            return;                                                                                 \
        }                                                                                           \
        TSK_PANELS_CALL(IT)                                                                         \
        const int64_t last = off[r1] > off[r0] ? off[r1] - 1 : off[r0];                             \
        enum { L = TSK_LANES };                                                                     \
        for (int64_t i = r0; i < r1; i++) {                                                         \
            const int64_t s = off[i], e = off[i + 1];                                               \
            const float b = bias ? bias[i] : 0.0f;                                                  \
            float *yr = y + i * ldy;                                                                \
            int64_t j = panels * TSK_PANEL_COLUMNS;                                                 \
            for (; j + 8 * L <= batch; j += 8 * L) TSK_N(pass_##IT##_8_##PF)(ind, val, s, e, last, x + j, ldx, yr + j, b, act); \
            if (j + 4 * L <= batch) { TSK_N(pass_##IT##_4_##PF)(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += 4 * L; } \
            if (j + 2 * L <= batch) { TSK_N(pass_##IT##_2_##PF)(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += 2 * L; } \
            if (j + L <= batch) { TSK_N(pass_##IT##_1_##PF)(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += L; } \
            if (j < batch) {                                                                        \
                const TSK_MASK m = VMASK(batch - j);                                                \
                TSK_VEC acc = VZERO();                                                              \
                for (int64_t p = s; p < e; p++) {                                                   \
                    const float *xr = x + (int64_t)ind[p] * ldx + j;                                \
                    acc = VFMA(VBCAST(val[p]), VLOADM(xr, m), acc);                                 \
                }                                                                                   \
                VSTOREM(yr + j, m, TSK_N(vact)(VADD(acc, VBCAST(b)), act));                         \
            }                                                                                       \
        }                                                                                           \
    }

#if TSK_PANEL_COLUMNS > 0
#define TSK_PANELS_CALL(IT) if (panels > 0) TSK_N(panels_##IT)(w, xp, panels, y, ldy, bias, act, r0, r1);
#else
#define TSK_PANELS_CALL(IT) (void)xp; (void)panels;
#endif

TSK_ROWS(uint16_t, 0)
TSK_ROWS(uint16_t, 1)
TSK_ROWS(uint32_t, 0)
TSK_ROWS(uint32_t, 1)
#undef TSK_ROWS
#undef TSK_PANELS_CALL

const tsk_rows_fn TSK_N(tsk_rows)[2][2] = {
    {TSK_N(rows_uint16_t_0), TSK_N(rows_uint16_t_1)},
    {TSK_N(rows_uint32_t_0), TSK_N(rows_uint32_t_1)},
};

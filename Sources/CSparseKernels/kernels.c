// Sparse kernels: Y = act(W · X + b), W in CSR (M × K), X (K × B) and Y (M × B) feature-major.
//
// Three variants of the same row kernel, each with a batch-1 path (SpMV):
//   scalar  the portable reference,
//   avx2    AVX2/FMA: the batch vectorised 8 lanes wide, up to 8 accumulators (64 columns) per pass,
//           the weight broadcast, X rows loaded straight from memory; SpMV assembles x 4 at a time
//           from scalar loads (measured 2x faster than vgatherdps on this AMD Zen machine), on a
//           sliced-ELLPACK copy of the matrix when it has one (see "Batch 1"),
//   avx512  the same 16 lanes wide (128 columns per pass), masked tails.
// Each vector function carries a target attribute, so the library needs no compiler flags, and
// `tsk_best_variant` picks one once from `__builtin_cpu_supports`.
#define _GNU_SOURCE
#include "CSparseKernels.h"

// Thread placement (sched_getcpu, sched_setaffinity, pthread_attr_setaffinity_np): glibc on Linux.
#if defined(__linux__) && defined(__GLIBC__)
#define TSK_AFFINITY 1
#else
#define TSK_AFFINITY 0
#endif

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// MARK: - Activations

static inline float act_scalar(float v, int act) {
    switch (act) {
    case TSK_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case TSK_ACT_TANH: return tanhf(v);
    case TSK_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

// MARK: - Scalar reference

#define DEFINE_SCALAR_ROWS(NAME, IT)                                                              \
    static void NAME(const tsk_csr *w, const float *x, int64_t ldx, float *y, int64_t ldy,       \
                     int64_t batch, const float *bias, int act, int64_t r0, int64_t r1) {        \
        const IT *ind = (const IT *)w->indices;                                                   \
        const float *val = w->values;                                                             \
        const int64_t *off = w->offsets;                                                          \
        for (int64_t i = r0; i < r1; i++) {                                                       \
            const float b = bias ? bias[i] : 0.0f;                                                \
            float *yr = y + i * ldy;                                                              \
            if (batch == 1) {                                                                     \
                float s = 0.0f;                                                                   \
                for (int64_t p = off[i]; p < off[i + 1]; p++) s += val[p] * x[(int64_t)ind[p] * ldx]; \
                yr[0] = act_scalar(s + b, act);                                                   \
                continue;                                                                         \
            }                                                                                     \
            for (int64_t j = 0; j < batch; j++) yr[j] = 0.0f;                                     \
            for (int64_t p = off[i]; p < off[i + 1]; p++) {                                       \
                const float v = val[p];                                                           \
                const float *xr = x + (int64_t)ind[p] * ldx;                                      \
                for (int64_t j = 0; j < batch; j++) yr[j] += v * xr[j];                           \
            }                                                                                     \
            for (int64_t j = 0; j < batch; j++) yr[j] = act_scalar(yr[j] + b, act);               \
        }                                                                                         \
    }

DEFINE_SCALAR_ROWS(scalar_rows_u16, uint16_t)
DEFINE_SCALAR_ROWS(scalar_rows_u32, uint32_t)

// MARK: - AVX2 / FMA

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline

AVX2_INLINE __m256 avx2_act(__m256 v, int act) {
    if (act == TSK_ACT_RELU) return _mm256_max_ps(v, _mm256_setzero_ps());
    if (act == TSK_ACT_IDENTITY) return v;
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int k = 0; k < 8; k++) t[k] = act_scalar(t[k], act);
    return _mm256_loadu_ps(t);
}

AVX2_INLINE __m256i avx2_tail_mask(int64_t n) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lanes);
}

// How many non-zeros ahead the X row of a non-zero is prefetched (its column is known early).
// Unpacked passes prefetch only when X is larger than this (smaller X stays in L1 and L2 anyway).
#define TSK_PREFETCH_BYTES (96 * 1024)
#ifndef TSK_PREFETCH
#define TSK_PREFETCH 12
#endif

// One pass over a row's non-zeros for N×8 batch columns starting at column j.
#define AVX2_PASS(IT, N, PF)                                                                          \
    AVX2_INLINE void avx2_pass_##IT##_##N##_##PF(const IT *ind, const float *val, int64_t s, int64_t e,  \
                                           int64_t last, const float *x, int64_t ldx,             \
                                           float *yr, float b, int act) {                         \
        __m256 acc[N];                                                                            \
        for (int k = 0; k < N; k++) acc[k] = _mm256_setzero_ps();                                 \
        for (int64_t p = s; p < e; p++) {                                                         \
            const int64_t q = p + TSK_PREFETCH < last ? p + TSK_PREFETCH : last;                  \
            const float *xq = x + (int64_t)ind[q] * ldx;                                          \
            if (PF)                                                                               \
                _mm_prefetch((const char *)xq, _MM_HINT_T0);                                      \
            const __m256 wv = _mm256_broadcast_ss(val + p);                                       \
            const float *xr = x + (int64_t)ind[p] * ldx;                                          \
            for (int k = 0; k < N; k++) acc[k] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xr + 8 * k), acc[k]); \
        }                                                                                         \
        const __m256 bv = _mm256_set1_ps(b);                                                      \
        for (int k = 0; k < N; k++) _mm256_storeu_ps(yr + 8 * k, avx2_act(_mm256_add_ps(acc[k], bv), act)); \
    }

AVX2_PASS(uint16_t, 8, 0)
AVX2_PASS(uint16_t, 8, 1)
AVX2_PASS(uint16_t, 4, 0)
AVX2_PASS(uint16_t, 4, 1)
AVX2_PASS(uint16_t, 2, 0)
AVX2_PASS(uint16_t, 2, 1)
AVX2_PASS(uint16_t, 1, 0)
AVX2_PASS(uint16_t, 1, 1)
AVX2_PASS(uint32_t, 8, 0)
AVX2_PASS(uint32_t, 8, 1)
AVX2_PASS(uint32_t, 4, 0)
AVX2_PASS(uint32_t, 4, 1)
AVX2_PASS(uint32_t, 2, 0)
AVX2_PASS(uint32_t, 2, 1)
AVX2_PASS(uint32_t, 1, 0)
AVX2_PASS(uint32_t, 1, 1)

// x[ind[0..<4]] as one vector: the four 16-bit indices come in two 32-bit loads (each split with
// one zero-extension and one shift; measured 5–10% faster than one 64-bit load and six shifts and
// masks at 300×784, 90–95%, where the SpMV is bound by the instructions it issues).
AVX2_INLINE __m128 avx2_x4_uint16_t(const float *x, const uint16_t *ind) {
    uint32_t lo, hi;
    memcpy(&lo, ind, 4);
    memcpy(&hi, ind + 2, 4);
    return _mm_set_ps(x[hi >> 16], x[hi & 0xFFFF], x[lo >> 16], x[lo & 0xFFFF]);
}
AVX2_INLINE __m128 avx2_x4_uint32_t(const float *x, const uint32_t *ind) {
    return _mm_set_ps(x[ind[3]], x[ind[2]], x[ind[1]], x[ind[0]]);
}

// Large batches: X comes packed in panels of 64 columns (panel t is K × 64 floats, contiguous,
// see `pack_panels`), and each panel is swept over all rows of the chunk before the next. A panel
// (K · 256 bytes) stays in L2 while W streams through once per panel, the rows of a panel never
// alias in L1 the way rows of a power-of-two-wide X do, and the X row of the non-zero
// `TSK_PREFETCH` ahead is prefetched (its column is known), which hides the L2 latency of the
// random row order. 8 accumulators (64 columns) per row.
// Measured (AVX2, 1 thread, 4096×4096 at 90%, B = 128): unpacked 35 ms; panels 37 ms without
// prefetch, 29 ms prefetching all 4 lines of the row, 21 ms prefetching its first line only (the
// hardware prefetcher follows with the rest, and 3 fewer instructions per non-zero matter more:
// with X in L1 the kernel is bound by issuing loads); distance 8–16 best, 12 kept.
#define TSK_AVX2_PANEL 64

// One non-zero of a panel row: the weight broadcast, 8 FMAs over the 64 floats of its X row.
#define AVX2_PANEL_NZ(V, XR)                                                                      \
    do {                                                                                          \
        const __m256 wv_ = _mm256_broadcast_ss(V);                                                \
        const float *xr_ = (XR);                                                                  \
        a0 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_), a0);                                       \
        a1 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 8), a1);                                   \
        a2 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 16), a2);                                  \
        a3 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 24), a3);                                  \
        a4 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 32), a4);                                  \
        a5 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 40), a5);                                  \
        a6 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 48), a6);                                  \
        a7 = _mm256_fmadd_ps(wv_, _mm256_load_ps(xr_ + 56), a7);                                  \
    } while (0)

// Four column indices from one load: 16-bit indices come four to a 64-bit word (the load that
// replaces four, which matters because the kernel is bound by issuing loads), 32-bit ones as is.
AVX2_INLINE void avx2_idx4_uint16_t(const uint16_t *ind, int64_t *c) {
    uint64_t a;
    memcpy(&a, ind, 8);
    c[0] = (int64_t)(a & 0xFFFF); c[1] = (int64_t)((a >> 16) & 0xFFFF);
    c[2] = (int64_t)((a >> 32) & 0xFFFF); c[3] = (int64_t)(a >> 48);
}
AVX2_INLINE void avx2_idx4_uint32_t(const uint32_t *ind, int64_t *c) {
    c[0] = ind[0]; c[1] = ind[1]; c[2] = ind[2]; c[3] = ind[3];
}

// The non-zeros of a row go four at a time: one index load for the four and one for the four
// whose X rows are prefetched `TSK_PREFETCH` non-zeros ahead, each prefetch issued just before
// one non-zero's FMAs. Measured against one non-zero per iteration (AVX2, 1 thread, B = 128):
// 300×784 at 90% 0.71 → 0.66 ns per FMA, at 95% 0.79 → 0.73; 1024×1024 at 90% 0.78 → 0.64.
#define AVX2_PANELS(IT)                                                                           \
    AVX2 static void avx2_panels_##IT(const tsk_csr *w, const float *xp, int64_t panels,         \
                                       float *y, int64_t ldy, const float *bias, int act,        \
                                       int64_t r0, int64_t r1) {                                  \
        const IT *ind = (const IT *)w->indices;                                                   \
        const float *val = w->values;                                                             \
        const int64_t *off = w->offsets;                                                          \
        const int64_t k = w->columns, end = off[r1];                                              \
        for (int64_t t = 0; t < panels; t++) {                                                    \
            const float *xb = xp + t * k * TSK_AVX2_PANEL;                                        \
            for (int64_t i = r0; i < r1; i++) {                                                   \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0; \
                int64_t p = off[i];                                                               \
                const int64_t e = off[i + 1];                                                     \
                for (; p + 4 <= e; p += 4) {                                                      \
                    int64_t c[4], d[4];                                                           \
                    avx2_idx4_##IT(ind + p, c);                                                   \
                    /* Near the end of the chunk the prefetch re-touches the current rows. */     \
                    avx2_idx4_##IT(ind + (p + TSK_PREFETCH + 4 <= end ? p + TSK_PREFETCH : p), d); \
                    for (int u = 0; u < 4; u++) {                                                 \
                        _mm_prefetch((const char *)(xb + d[u] * TSK_AVX2_PANEL), _MM_HINT_T0);    \
                        AVX2_PANEL_NZ(val + p + u, xb + c[u] * TSK_AVX2_PANEL);                   \
                    }                                                                             \
                }                                                                                 \
                for (; p < e; p++) AVX2_PANEL_NZ(val + p, xb + (int64_t)ind[p] * TSK_AVX2_PANEL); \
                const __m256 bv = _mm256_set1_ps(bias ? bias[i] : 0.0f);                          \
                float *yr = y + i * ldy + t * TSK_AVX2_PANEL;                                     \
                _mm256_storeu_ps(yr, avx2_act(_mm256_add_ps(a0, bv), act));                       \
                _mm256_storeu_ps(yr + 8, avx2_act(_mm256_add_ps(a1, bv), act));                   \
                _mm256_storeu_ps(yr + 16, avx2_act(_mm256_add_ps(a2, bv), act));                  \
                _mm256_storeu_ps(yr + 24, avx2_act(_mm256_add_ps(a3, bv), act));                  \
                _mm256_storeu_ps(yr + 32, avx2_act(_mm256_add_ps(a4, bv), act));                  \
                _mm256_storeu_ps(yr + 40, avx2_act(_mm256_add_ps(a5, bv), act));                  \
                _mm256_storeu_ps(yr + 48, avx2_act(_mm256_add_ps(a6, bv), act));                  \
                _mm256_storeu_ps(yr + 56, avx2_act(_mm256_add_ps(a7, bv), act));                  \
            }                                                                                     \
        }                                                                                         \
    }

AVX2_PANELS(uint16_t)
AVX2_PANELS(uint32_t)

#define DEFINE_AVX2_ROWS(NAME, IT, PF)                                                                \
    AVX2 static void NAME(const tsk_csr *w, const float *x, int64_t ldx, float *y, int64_t ldy,  \
                          int64_t batch, const float *bias, int act, int64_t r0, int64_t r1,     \
                          const float *xp, int64_t panels) {                                      \
        const IT *ind = (const IT *)w->indices;                                                   \
        const float *val = w->values;                                                             \
        const int64_t *off = w->offsets;                                                          \
        if (batch == 1 && ldx == 1) {                                                             \
            /* SpMV: x assembled 4 at a time with scalar loads (faster than vgatherdps on AMD  */ \
            /* Zen), 128-bit FMAs into four accumulators (two for the last < 16; measured 12% */ \
            /* faster than two at 300x784, 90%).                                              */ \
            for (int64_t i = r0; i < r1; i++) {                                                   \
                const int64_t e = off[i + 1];                                                     \
                int64_t p = off[i];                                                               \
                __m128 a0 = _mm_setzero_ps(), a1 = _mm_setzero_ps();                              \
                __m128 a2 = _mm_setzero_ps(), a3 = _mm_setzero_ps();                              \
                for (; p + 16 <= e; p += 16) {                                                    \
                    a0 = _mm_fmadd_ps(_mm_loadu_ps(val + p), avx2_x4_##IT(x, ind + p), a0);       \
                    a1 = _mm_fmadd_ps(_mm_loadu_ps(val + p + 4), avx2_x4_##IT(x, ind + p + 4), a1); \
                    a2 = _mm_fmadd_ps(_mm_loadu_ps(val + p + 8), avx2_x4_##IT(x, ind + p + 8), a2); \
                    a3 = _mm_fmadd_ps(_mm_loadu_ps(val + p + 12), avx2_x4_##IT(x, ind + p + 12), a3); \
                }                                                                                 \
                a0 = _mm_add_ps(a0, a2); a1 = _mm_add_ps(a1, a3);                                 \
                for (; p + 8 <= e; p += 8) {                                                      \
                    a0 = _mm_fmadd_ps(_mm_loadu_ps(val + p), avx2_x4_##IT(x, ind + p), a0);       \
                    a1 = _mm_fmadd_ps(_mm_loadu_ps(val + p + 4), avx2_x4_##IT(x, ind + p + 4), a1); \
                }                                                                                 \
                if (p + 4 <= e) {                                                                 \
                    a0 = _mm_fmadd_ps(_mm_loadu_ps(val + p), avx2_x4_##IT(x, ind + p), a0);       \
                    p += 4;                                                                       \
                }                                                                                 \
                __m128 h = _mm_add_ps(a0, a1);                                                    \
                h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                           \
                float s = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));                       \
                for (; p < e; p++) s += val[p] * x[ind[p]];                                       \
                y[i * ldy] = act_scalar(s + (bias ? bias[i] : 0.0f), act);                        \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        if (panels > 0) avx2_panels_##IT(w, xp, panels, y, ldy, bias, act, r0, r1);              \
        const int64_t last = off[r1] > off[r0] ? off[r1] - 1 : off[r0];                           \
        for (int64_t i = r0; i < r1; i++) {                                                       \
            const int64_t s = off[i], e = off[i + 1];                                             \
            const float b = bias ? bias[i] : 0.0f;                                                \
            float *yr = y + i * ldy;                                                              \
            int64_t j = panels * TSK_AVX2_PANEL;                                                  \
            for (; j + 64 <= batch; j += 64) avx2_pass_##IT##_8_##PF(ind, val, s, e, last, x + j, ldx, yr + j, b, act); \
            if (j + 32 <= batch) { avx2_pass_##IT##_4_##PF(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += 32; } \
            if (j + 16 <= batch) { avx2_pass_##IT##_2_##PF(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += 16; } \
            if (j + 8 <= batch) { avx2_pass_##IT##_1_##PF(ind, val, s, e, last, x + j, ldx, yr + j, b, act); j += 8; }  \
            if (j < batch) {                                                                      \
                const __m256i m = avx2_tail_mask(batch - j);                                      \
                __m256 acc = _mm256_setzero_ps();                                                 \
                for (int64_t p = s; p < e; p++) {                                                 \
                    const float *xr = x + (int64_t)ind[p] * ldx + j;                              \
                    acc = _mm256_fmadd_ps(_mm256_broadcast_ss(val + p), _mm256_maskload_ps(xr, m), acc); \
                }                                                                                 \
                acc = avx2_act(_mm256_add_ps(acc, _mm256_set1_ps(b)), act);                       \
                _mm256_maskstore_ps(yr + j, m, acc);                                              \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_AVX2_ROWS(avx2_rows_u16, uint16_t, 0)
DEFINE_AVX2_ROWS(avx2_rows_u32, uint32_t, 0)
DEFINE_AVX2_ROWS(avx2_rows_u16_pf, uint16_t, 1)
DEFINE_AVX2_ROWS(avx2_rows_u32_pf, uint32_t, 1)

// MARK: - AVX-512

#define AVX512 __attribute__((target("avx512f")))
#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline

AVX512_INLINE __m512 avx512_act(__m512 v, int act) {
    if (act == TSK_ACT_RELU) return _mm512_max_ps(v, _mm512_setzero_ps());
    if (act == TSK_ACT_IDENTITY) return v;
    float t[16];
    _mm512_storeu_ps(t, v);
    for (int k = 0; k < 16; k++) t[k] = act_scalar(t[k], act);
    return _mm512_loadu_ps(t);
}

#define AVX512_PASS(IT, N)                                                                        \
    AVX512_INLINE void avx512_pass_##IT##_##N(const IT *ind, const float *val, int64_t s,        \
                                               int64_t e, const float *x, int64_t ldx, float *yr, \
                                               float b, int act) {                                \
        __m512 acc[N];                                                                            \
        for (int k = 0; k < N; k++) acc[k] = _mm512_setzero_ps();                                 \
        for (int64_t p = s; p < e; p++) {                                                         \
            const __m512 wv = _mm512_set1_ps(val[p]);                                             \
            const float *xr = x + (int64_t)ind[p] * ldx;                                          \
            for (int k = 0; k < N; k++) acc[k] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xr + 16 * k), acc[k]); \
        }                                                                                         \
        const __m512 bv = _mm512_set1_ps(b);                                                      \
        for (int k = 0; k < N; k++) _mm512_storeu_ps(yr + 16 * k, avx512_act(_mm512_add_ps(acc[k], bv), act)); \
    }

AVX512_PASS(uint16_t, 8)
AVX512_PASS(uint16_t, 4)
AVX512_PASS(uint16_t, 2)
AVX512_PASS(uint16_t, 1)
AVX512_PASS(uint32_t, 8)
AVX512_PASS(uint32_t, 4)
AVX512_PASS(uint32_t, 2)
AVX512_PASS(uint32_t, 1)

AVX512_INLINE __m512i avx512_load_idx_uint16_t(const uint16_t *p) {
    return _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
}
AVX512_INLINE __m512i avx512_load_idx_uint32_t(const uint32_t *p) {
    return _mm512_loadu_si512((const void *)p);
}

// The AVX-512 counterpart of `avx2_panels`: panels of 128 columns, 8 accumulators of 16 lanes.
#define TSK_AVX512_PANEL 128

#define AVX512_PANELS(IT)                                                                         \
    AVX512 static void avx512_panels_##IT(const tsk_csr *w, const float *xp, int64_t panels,     \
                                           float *y, int64_t ldy, const float *bias, int act,    \
                                           int64_t r0, int64_t r1) {                              \
        const IT *ind = (const IT *)w->indices;                                                   \
        const float *val = w->values;                                                             \
        const int64_t *off = w->offsets;                                                          \
        const int64_t k = w->columns, last = off[r1] - 1;                                         \
        for (int64_t t = 0; t < panels; t++) {                                                    \
            const float *xb = xp + t * k * TSK_AVX512_PANEL;                                      \
            for (int64_t i = r0; i < r1; i++) {                                                   \
                __m512 acc[8];                                                                    \
                for (int c = 0; c < 8; c++) acc[c] = _mm512_setzero_ps();                         \
                for (int64_t p = off[i]; p < off[i + 1]; p++) {                                   \
                    const int64_t q = p + TSK_PREFETCH < last ? p + TSK_PREFETCH : last;          \
                    _mm_prefetch((const char *)(xb + (int64_t)ind[q] * TSK_AVX512_PANEL), _MM_HINT_T0); \
                    const __m512 wv = _mm512_set1_ps(val[p]);                                     \
                    const float *xr = xb + (int64_t)ind[p] * TSK_AVX512_PANEL;                    \
                    for (int c = 0; c < 8; c++) acc[c] = _mm512_fmadd_ps(wv, _mm512_load_ps(xr + 16 * c), acc[c]); \
                }                                                                                 \
                const __m512 bv = _mm512_set1_ps(bias ? bias[i] : 0.0f);                          \
                float *yr = y + i * ldy + t * TSK_AVX512_PANEL;                                   \
                for (int c = 0; c < 8; c++) _mm512_storeu_ps(yr + 16 * c, avx512_act(_mm512_add_ps(acc[c], bv), act)); \
            }                                                                                     \
        }                                                                                         \
    }

AVX512_PANELS(uint16_t)
AVX512_PANELS(uint32_t)

#define DEFINE_AVX512_ROWS(NAME, IT)                                                              \
    AVX512 static void NAME(const tsk_csr *w, const float *x, int64_t ldx, float *y, int64_t ldy, \
                            int64_t batch, const float *bias, int act, int64_t r0, int64_t r1,   \
                            const float *xp, int64_t panels) {                                    \
        const IT *ind = (const IT *)w->indices;                                                   \
        const float *val = w->values;                                                             \
        const int64_t *off = w->offsets;                                                          \
        if (batch == 1 && ldx == 1) {                                                             \
            for (int64_t i = r0; i < r1; i++) {                                                   \
                const int64_t e = off[i + 1];                                                     \
                int64_t p = off[i];                                                               \
                __m512 a0 = _mm512_setzero_ps();                                                  \
                for (; p + 16 <= e; p += 16) {                                                    \
                    const __m512 g = _mm512_i32gather_ps(avx512_load_idx_##IT(ind + p), x, 4);    \
                    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(val + p), g, a0);                        \
                }                                                                                 \
                float s = _mm512_reduce_add_ps(a0);                                               \
                for (; p < e; p++) s += val[p] * x[ind[p]];                                       \
                y[i * ldy] = act_scalar(s + (bias ? bias[i] : 0.0f), act);                        \
            }                                                                                     \
            return;                                                                               \
        }                                                                                         \
        if (panels > 0) avx512_panels_##IT(w, xp, panels, y, ldy, bias, act, r0, r1);            \
        for (int64_t i = r0; i < r1; i++) {                                                       \
            const int64_t s = off[i], e = off[i + 1];                                             \
            const float b = bias ? bias[i] : 0.0f;                                                \
            float *yr = y + i * ldy;                                                              \
            int64_t j = panels * TSK_AVX512_PANEL;                                                \
            for (; j + 128 <= batch; j += 128) avx512_pass_##IT##_8(ind, val, s, e, x + j, ldx, yr + j, b, act); \
            if (j + 64 <= batch) { avx512_pass_##IT##_4(ind, val, s, e, x + j, ldx, yr + j, b, act); j += 64; } \
            if (j + 32 <= batch) { avx512_pass_##IT##_2(ind, val, s, e, x + j, ldx, yr + j, b, act); j += 32; } \
            if (j + 16 <= batch) { avx512_pass_##IT##_1(ind, val, s, e, x + j, ldx, yr + j, b, act); j += 16; } \
            if (j < batch) {                                                                      \
                const __mmask16 m = (__mmask16)((1u << (batch - j)) - 1u);                        \
                __m512 acc = _mm512_setzero_ps();                                                 \
                for (int64_t p = s; p < e; p++) {                                                 \
                    const float *xr = x + (int64_t)ind[p] * ldx + j;                              \
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(val[p]), _mm512_maskz_loadu_ps(m, xr), acc); \
                }                                                                                 \
                acc = avx512_act(_mm512_add_ps(acc, _mm512_set1_ps(b)), act);                     \
                _mm512_mask_storeu_ps(yr + j, m, acc);                                            \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_AVX512_ROWS(avx512_rows_u16, uint16_t)
DEFINE_AVX512_ROWS(avx512_rows_u32, uint32_t)

// MARK: - Dispatch

int tsk_variant_supported(int variant) {
    switch (variant) {
    case TSK_VARIANT_SCALAR: return 1;
    case TSK_VARIANT_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TSK_VARIANT_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
    default: return 0;
    }
}

static _Atomic int best_variant = -1;

int tsk_best_variant(void) {
    int v = atomic_load_explicit(&best_variant, memory_order_relaxed);
    if (v >= 0) return v;
    v = tsk_variant_supported(TSK_VARIANT_AVX512) ? TSK_VARIANT_AVX512
        : tsk_variant_supported(TSK_VARIANT_AVX2) ? TSK_VARIANT_AVX2
                                                   : TSK_VARIANT_SCALAR;
    atomic_store_explicit(&best_variant, v, memory_order_relaxed);
    return v;
}

// MARK: - Panels

// Per-thread scratch for packed panels, grown as needed and kept (a compiled network calls the
// kernels thousands of times a second; a fresh multi-megabyte allocation each call would cost
// page faults). The buffer is also registered under a pthread key whose destructor frees it when
// the thread exits, so a short-lived calling thread does not leak its scratch.
static __thread float *panel_buf;
static __thread int64_t panel_cap;
static pthread_key_t panel_key;
static pthread_once_t panel_key_once = PTHREAD_ONCE_INIT;
static int panel_key_ok;

static void panel_free(void *p) { free(p); }

static void panel_key_init(void) { panel_key_ok = pthread_key_create(&panel_key, panel_free) == 0; }

// The panel width of `variant` (0: the variant runs unpacked).
static int64_t panel_width(int variant) {
    return variant == TSK_VARIANT_AVX512 ? TSK_AVX512_PANEL : variant == TSK_VARIANT_AVX2 ? TSK_AVX2_PANEL : 0;
}

// Packs the first `panels · pw` columns of X (K × ldx) into panels of `pw` columns, panel t at
// `dst + t·K·pw` with rows of `pw` floats; returns NULL when the scratch cannot be allocated.
static const float *pack_panels(const float *x, int64_t ldx, int64_t k, int64_t pw, int64_t panels) {
    const int64_t n = k * pw * panels;
    if (panel_cap < n) {
        pthread_once(&panel_key_once, panel_key_init);
        if (panel_key_ok) pthread_setspecific(panel_key, NULL);
        free(panel_buf);
        panel_buf = aligned_alloc(64, (size_t)((n * 4 + 63) & ~(int64_t)63));
        panel_cap = panel_buf ? n : 0;
        if (!panel_buf) return NULL;
        // Without a key (creation failed) the buffer is kept for the thread's life, as before.
        if (panel_key_ok) pthread_setspecific(panel_key, panel_buf);
    }
    for (int64_t r = 0; r < k; r++)
        for (int64_t t = 0; t < panels; t++)
            memcpy(panel_buf + (t * k + r) * pw, x + r * ldx + t * pw, (size_t)pw * sizeof(float));
    return panel_buf;
}

// How many full panels a product uses: none for small batches, where X is small enough to stay
// in cache unpacked and packing would cost more than it saves.
static int64_t panel_count(int variant, const tsk_csr *w, int64_t batch) {
    const int64_t pw = panel_width(variant);
    if (pw == 0 || batch < pw || w->offsets[w->rows] == w->offsets[0]) return 0;
    return batch / pw;
}

static void rows_impl(int variant, const tsk_csr *w, const float *x, int64_t ldx, float *y, int64_t ldy,
                      int64_t batch, const float *bias, int act, int64_t r0, int64_t r1,
                      const float *xp, int64_t panels) {
    if (r0 >= r1 || batch <= 0) return;
    const int wide = w->index_bytes != 2;
    switch (variant) {
    case TSK_VARIANT_AVX512:
        (wide ? avx512_rows_u32 : avx512_rows_u16)(w, x, ldx, y, ldy, batch, bias, act, r0, r1, xp, panels);
        return;
    case TSK_VARIANT_AVX2:
        // Prefetch only when the X rows do not all fit in L1 and L2 latency shows.
        if (w->columns * (batch < ldx ? batch : ldx) * 4 > TSK_PREFETCH_BYTES)
            (wide ? avx2_rows_u32_pf : avx2_rows_u16_pf)(w, x, ldx, y, ldy, batch, bias, act, r0, r1, xp, panels);
        else
            (wide ? avx2_rows_u32 : avx2_rows_u16)(w, x, ldx, y, ldy, batch, bias, act, r0, r1, xp, panels);
        return;
    default:
        (wide ? scalar_rows_u32 : scalar_rows_u16)(w, x, ldx, y, ldy, batch, bias, act, r0, r1);
        return;
    }
}

void tsk_split_rows(const int64_t *offsets, int64_t rows, int64_t parts, int64_t row_cost,
                    int64_t *splits) {
    if (parts < 1) parts = 1;
    const int64_t total = (offsets[rows] - offsets[0]) + row_cost * rows;
    splits[0] = 0;
    int64_t i = 0;
    for (int64_t k = 1; k < parts; k++) {
        // The first row boundary whose cumulative cost reaches k/parts of the total.
        const double target = (double)total * (double)k / (double)parts;
        while (i < rows && (double)((offsets[i] - offsets[0]) + row_cost * i) < target) i++;
        splits[k] = i;
    }
    splits[parts] = rows;
}

// MARK: - Thread pool
//
// The caller publishes a job as one 64-bit word: generation (32 bits) | chunk count (16) | next
// chunk (16). Every thread, caller included, claims chunks with a compare-and-swap on that word,
// so a worker that the scheduler does not run in time simply claims nothing: the caller does the
// work itself and the call degrades to one thread instead of waiting. Idle workers, and a caller
// waiting for a worker's last chunk, spin for at most `spin_ns` and then block on a condition.

typedef void (*tsk_job_fn)(void *ctx, int64_t chunk);

#define TSK_MAX_WORKERS 7

// Job sizes, in multiply-adds (nnz · max(batch, 8)), for `run_parallel`:
//   under TSK_ALONE_JOB (under ~0.5 µs): always the caller alone;
//   tiny   (< TSK_TINY_JOB, under ~4 µs here): the pool only if a worker is awake (spinning);
//   medium (< TSK_SMALL_JOB, under ~60 µs): wakes a sleeping worker;
//   large: always the pool.
// Tiny and medium jobs run on the caller alone while a back-off lasts (delayed workers over budget).
#define TSK_ALONE_JOB (1 << 13)
#define TSK_TINY_JOB (1 << 16)
#define TSK_SMALL_JOB (1 << 20)
enum { TSK_JOB_LARGE = 0, TSK_JOB_MEDIUM = 1, TSK_JOB_TINY = 2 };

static int job_size(int64_t work) {
    return work < TSK_TINY_JOB ? TSK_JOB_TINY : work < TSK_SMALL_JOB ? TSK_JOB_MEDIUM : TSK_JOB_LARGE;
}

// The caller of a tiny or medium job that waits for a worker's chunk longer than its own share
// took plus TSK_STALL_NS saw a delayed worker, and so does a spinning worker that finds it was
// descheduled for TSK_PREEMPTED_NS or more. The time such delays cost goes into a budget that
// drains at 1/TSK_DELAY_DRAIN of the time that passes; when the budget exceeds TSK_DELAY_BUDGET_NS
// a competing process is taking the cores, and tiny and medium jobs stay on the caller for
// `backoff` ns, doubling from TSK_BACKOFF_MIN_NS up to TSK_BACKOFF_MAX_NS while back-offs repeat,
// and back to the minimum once jobs run on two threads without a delay (TSK_CALM_NS).
// Measured here (LeNet-300-100's layers at 95%, batch 1, C microbenchmark, delays logged): on the
// quiet machine the host delayed a worker by 23–106 µs every 50 ms or so, beside `yes > /dev/null`
// by 4.0–4.1 ms (a scheduler slice) every few ms. Backing off at every delay, as the pool first
// did, turned the quiet machine's hiccups into back-offs that doubled to hundreds of ms: 11–25 of
// them in a 3 s run kept most of its jobs on one thread (7.1–7.2 µs a pass against 4.9–5.1 µs with
// no back-off at all). In the host's slow hours (see `kind_pairs`) a few delays a second also
// took 0.6–3.4 ms; the 1 ms budget passes the short hiccups, backs off for most of the long ones
// (one back-off of 2 ms costs little) and stops at a competing process's first slice.
#define TSK_STALL_NS 20000
#define TSK_PREEMPTED_NS 200000
#define TSK_DELAY_BUDGET_NS 1000000
#define TSK_DELAY_DRAIN 16
#define TSK_BACKOFF_MIN_NS 2000000
#define TSK_BACKOFF_MAX_NS 1000000000
// The back-off's length returns to the minimum after a job that ran on two threads without a delay
// this long after the last back-off ended. Beside a competing process delays came every few ms,
// and a single clean job in between kept the back-offs at 2 ms: LeNet-300-100's layers at batch 1
// then took 8.4 µs on two threads against 7.0 on one.
#define TSK_CALM_NS 100000000

static struct {
    pthread_mutex_t owner;  // one caller at a time; others run single-threaded
    pthread_mutex_t lock;   // guards the two conditions and the delay budget
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    // The job (written by the caller, read by workers), the completion count, the caller's state
    // and each worker's counter on their own cache lines: a line that moves between the cores
    // costs 100–400 ns here (see `run_parallel`).
    _Alignas(64) _Atomic uint64_t next;
    _Atomic uint32_t sleeping;  // bit i: worker i sleeps
    _Atomic int caller_sleeping;
    _Atomic int caller_cpu;  // the core of the caller that last woke the workers, or -1
    _Atomic int64_t spin_ns;
    _Atomic int64_t spin_until;  // workers spin at least until this time (a wake-only job's request)
    _Atomic int allowed;    // workers with an index below this may claim chunks of the current job
    tsk_job_fn fn;
    void *ctx;
    uint32_t generation;
    _Alignas(64) _Atomic int64_t done;
    _Alignas(64) _Atomic int workers;    // written under `owner`, read without it
    _Atomic int64_t backoff_until;  // jobs under TSK_SMALL_JOB run on the caller before this time
    _Atomic int64_t backoff;        // the next back-off's length
    int64_t delay_budget, delay_at;  // the delay budget (ns) and when it was last drained; under `lock`
    _Atomic uint64_t stat_jobs, stat_caller_chunks, stat_sleeps, stat_stalls, stat_alone, stat_delays;
    struct { _Alignas(64) _Atomic uint64_t chunks; } stat_by_worker[TSK_MAX_WORKERS];
} pool = {
    .owner = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
    .spin_ns = 50000,
    .caller_cpu = -1,
    .backoff = TSK_BACKOFF_MIN_NS,
};

static inline int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Claims and runs chunks of generation `g` until none is left; returns how many it ran. `worker`
// is the pool worker's index, or -1 for the caller; a worker's chunks are counted before they
// count as done, so a snapshot taken after a call returns includes them.
static uint64_t run_claims(uint32_t g, int worker) {
    const int is_worker = worker >= 0;
    uint64_t ran = 0;
    uint64_t n = atomic_load(&pool.next);
    for (;;) {
        if ((uint32_t)(n >> 32) != g) break;
        const uint32_t total = (uint32_t)(n >> 16) & 0xFFFF, idx = (uint32_t)n & 0xFFFF;
        if (idx >= total) break;
        if (!atomic_compare_exchange_weak(&pool.next, &n, n + 1)) continue;
        // A claimed chunk keeps the job alive, so its fields are stable until `done` counts it.
        const tsk_job_fn fn = pool.fn;
        void *const ctx = pool.ctx;
        fn(ctx, idx);
        ran++;
        if (is_worker) {
            // Only this worker writes its counter: no locked instruction, no shared line.
            atomic_store_explicit(&pool.stat_by_worker[worker].chunks,
                                  atomic_load_explicit(&pool.stat_by_worker[worker].chunks, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        }
        const int64_t d = atomic_fetch_add(&pool.done, 1) + 1;
        if (is_worker && d == (int64_t)total && atomic_load(&pool.caller_sleeping)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.done_cv);
            pthread_mutex_unlock(&pool.lock);
        }
        n = atomic_load(&pool.next);
    }
    return ran;
}

// Sets the back-off for tiny and medium jobs from time `t`, and doubles the next one.
static void back_off(int64_t t) {
    atomic_fetch_add_explicit(&pool.stat_stalls, 1, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&pool.backoff, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&pool.backoff, &b, b * 2 > TSK_BACKOFF_MAX_NS ? TSK_BACKOFF_MAX_NS : b * 2)) {}
    // Only ever later: a racing back-off must not cut a running one short.
    int64_t until = atomic_load_explicit(&pool.backoff_until, memory_order_relaxed);
    while (until < t + b && !atomic_compare_exchange_weak(&pool.backoff_until, &until, t + b)) {}
}

// A worker was delayed by `lost` ns at time `t`: charges the delay budget, and backs off when it
// overflows (see TSK_DELAY_BUDGET_NS). Rare (a delay is at least 20 µs), so it takes the lock.
static void delayed(int64_t t, int64_t lost) {
    atomic_fetch_add_explicit(&pool.stat_delays, 1, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    const int64_t drained = t > pool.delay_at ? (t - pool.delay_at) / TSK_DELAY_DRAIN : 0;
    int64_t budget = pool.delay_budget > drained ? pool.delay_budget - drained : 0;
    if (t > pool.delay_at) pool.delay_at = t;
    budget += lost;
    const int over = budget > TSK_DELAY_BUDGET_NS;
    pool.delay_budget = over ? 0 : budget;
    pthread_mutex_unlock(&pool.lock);
    if (over) back_off(t);
}

void tsk_pool_reset_backoff(void) {
    atomic_store(&pool.backoff_until, 0);
    atomic_store(&pool.backoff, TSK_BACKOFF_MIN_NS);
    pthread_mutex_lock(&pool.lock);
    pool.delay_budget = 0;
    pthread_mutex_unlock(&pool.lock);
}

// A woken worker often starts on the core of the caller that woke it, even with the other core
// idle (seen here: the guest kernel takes an idle vCPU that the host has parked for a busy one),
// and then shares that core with the caller, spinning, until the scheduler moves it: jobs of
// 20 µs took 80–110 µs. So a worker that finds itself on the waking caller's core moves off it
// (a mask without that core, then the old mask back, which leaves it where it landed).
#if TSK_AFFINITY
// The calling thread's mask (`mask`) and the same without `cpu` (`others`); 0 when that leaves none.
static int mask_without(int cpu, cpu_set_t *mask, cpu_set_t *others) {
    if (cpu < 0 || sched_getaffinity(0, sizeof *mask, mask) != 0) return 0;
    *others = *mask;
    CPU_CLR(cpu, others);
    return CPU_COUNT(others) > 0;
}
#endif

static void leave_callers_core(void) {
#if TSK_AFFINITY
    const int caller = atomic_load_explicit(&pool.caller_cpu, memory_order_relaxed);
    cpu_set_t mask, others;
    if (caller < 0 || sched_getcpu() != caller || !mask_without(caller, &mask, &others)) return;
    if (sched_setaffinity(0, sizeof others, &others) == 0) sched_setaffinity(0, sizeof mask, &mask);
#endif
}

// New workers likewise start away from their creator's core (a new thread queued there waited
// 1–4 ms for it here), then take their creator's mask (`worker_masks`, written before creation).
#if TSK_AFFINITY
static cpu_set_t worker_masks[TSK_MAX_WORKERS];
static int worker_mask_set[TSK_MAX_WORKERS];
#endif

static void start_off_callers_core(pthread_attr_t *attr, int index) {
#if TSK_AFFINITY
    cpu_set_t others;
    worker_mask_set[index] = mask_without(sched_getcpu(), &worker_masks[index], &others)
                             && pthread_attr_setaffinity_np(attr, sizeof others, &others) == 0;
#else
    (void)attr;
    (void)index;
#endif
}

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
#if TSK_AFFINITY
    if (worker_mask_set[index]) sched_setaffinity(0, sizeof worker_masks[index], &worker_masks[index]);
#endif
    uint32_t seen = (uint32_t)(atomic_load(&pool.next) >> 32);
    for (;;) {
        uint32_t g = (uint32_t)(atomic_load(&pool.next) >> 32);
        if (g == seen) {
            // A worker left out of the last job (a call with fewer threads than workers) sleeps at
            // once: spinning, it would only take a core from the caller or the workers in use.
            // A wake-only job asks the workers to spin until the next run of its kind
            // (`spin_until`), which may come later than `spin_ns`.
            const int64_t start = now_ns();
            int64_t limit = 0;
            if (index < atomic_load_explicit(&pool.allowed, memory_order_relaxed)) {
                const int64_t until = atomic_load_explicit(&pool.spin_until, memory_order_relaxed) - start;
                limit = atomic_load_explicit(&pool.spin_ns, memory_order_relaxed);
                if (until > limit) limit = until;
            }
            int64_t last = start;
            for (uint32_t k = 1;; k++) {
                cpu_relax();
                g = (uint32_t)(atomic_load_explicit(&pool.next, memory_order_acquire) >> 32);
                if (g != seen) break;
                if ((k & 63) != 0) continue;
                // 64 spins take well under a microsecond; a longer gap means another thread had
                // this core, so the pool is not alone on the machine.
                const int64_t t = now_ns();
                // Only a worker that takes part in jobs judges: more workers than cores (left by a
                // call with more threads) would otherwise deschedule one another.
                if (t - last > TSK_PREEMPTED_NS && index < atomic_load_explicit(&pool.allowed, memory_order_relaxed))
                    delayed(t, t - last);
                last = t;
                if (t - start > limit) {
                    atomic_fetch_add_explicit(&pool.stat_sleeps, 1, memory_order_relaxed);
                    pthread_mutex_lock(&pool.lock);
                    atomic_fetch_or(&pool.sleeping, 1u << index);
                    while ((g = (uint32_t)(atomic_load(&pool.next) >> 32)) == seen)
                        pthread_cond_wait(&pool.work_cv, &pool.lock);
                    atomic_fetch_and(&pool.sleeping, ~(1u << index));
                    pthread_mutex_unlock(&pool.lock);
                    leave_callers_core();
                    break;
                }
            }
        }
        seen = g;
        // `allowed` is stored before the job's word, so it is at least this job's value; a worker
        // beyond the job's thread count leaves its chunks to the others and waits for the next job.
        if (index >= atomic_load(&pool.allowed)) continue;
        run_claims(g, index);
    }
    return NULL;
}

// Creates pool workers until there are `n` (or creation fails); returns how many exist. Called
// with `pool.owner` held.
static int ensure_workers(int n) {
    int workers = atomic_load(&pool.workers);
    while (workers < n) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        start_off_callers_core(&attr, workers);
        const int failed = pthread_create(&t, &attr, worker_main, (void *)(intptr_t)workers);
        pthread_attr_destroy(&attr);
        if (failed) break;
        atomic_store(&pool.workers, ++workers);
    }
    return workers;
}

// Whether a pair of threads pays, per kind of job. A job hands cache lines between the cores
// (the job word, the completion count, X, the rows of Y), and a line's round trip between this
// machine's two cores measured 210 ns in some hours and 760–1230 ns in others (the host moves the
// VM's cores). With the slow hand-offs a network's batch-1 layers ran slower on two threads
// than on one, with the quick ones faster (LeNet-300-100's three layers at 95% in a C
// microbenchmark: 9.5 µs on two threads against 6.8 on one, and 6.2 against 6.7).
// So for each kind of tiny or medium job (its function, chunk count and work; a network's layer,
// say) the caller times its first runs each way in turn and then runs it the faster way,
// re-timing the other way every TSK_RETIME runs so that a change of the machine's state is
// followed. Times start as the least of the first 3 samples, then follow later ones with weight
// 1/8, each capped at twice the average, so that one interrupted run does not flip the choice;
// two threads must be 3% faster. Two threads are only timed with a worker already spinning: a
// worker woken by the job itself starts late, and its wake-up can even take the caller's core
// for tens of microseconds (seen here), so when the workers sleep the caller wakes them, runs
// that job alone untimed, and times two threads at the kind's next run. The choice changes
// which thread runs a chunk, never what a chunk computes: results are the same bits either way.
#define TSK_KINDS 64
#define TSK_RETIME 32

typedef struct {
    uint64_t key;
    int64_t alone, pair;  // average ns
    uint32_t alone_n, pair_n, runs;
    int pair_next;        // the workers were woken for the next run, which runs on two threads
    uint64_t used;        // when last used, on `kind_clock`
} job_kind;

// 4-way set-associative, least recently used out: kinds that share a set (two layers of one
// network, say) do not evict each other on every run.
#define TSK_KIND_WAYS 4
static job_kind kinds[TSK_KINDS];  // guarded by pool.owner
static uint64_t kind_clock;

static job_kind *kind_of(tsk_job_fn fn, int64_t chunks, int64_t work) {
    uint64_t key = (uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ull ^ (uint64_t)chunks * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)work;
    key = key ? key : 1;
    job_kind *set = &kinds[(key ^ (key >> 29)) % (TSK_KINDS / TSK_KIND_WAYS) * TSK_KIND_WAYS], *k = set;
    for (int i = 0; i < TSK_KIND_WAYS; i++) {
        if (set[i].key == key) { k = &set[i]; break; }
        if (set[i].used < k->used) k = &set[i];
    }
    if (k->key != key) *k = (job_kind){.key = key};
    k->used = ++kind_clock;
    return k;
}

static void add_sample(int64_t *average, uint32_t *n, int64_t sample) {
    if (*n == 0 || (*n < 3 && sample < *average)) *average = sample;
    else if (*n >= 3) *average += ((sample > 2 * *average ? 2 * *average : sample) - *average) / 8;
    if (*n < UINT32_MAX) (*n)++;
}

// Whether the next run of kind `k` uses the pool.
static int kind_pairs(job_kind *k) {
    k->runs++;
    if (k->pair_next) return 1;
    if (k->alone_n < 3 || k->pair_n < 3) return k->runs % 2 == 0;
    const int pair = k->pair * 100 < k->alone * 97;
    return k->runs % TSK_RETIME == 0 ? !pair : pair;
}

// Publishes job `fn` of `chunks` chunks for the first `allowed` workers (none: only wakes them,
// to spin) and wakes sleeping workers. Called with `pool.owner` held.
// The `sleeping` bits of the first `n` workers.
static inline uint32_t first_workers(int n) { return (1u << n) - 1; }

static void post(tsk_job_fn fn, void *ctx, int64_t chunks, int allowed) {
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store(&pool.allowed, allowed);
    atomic_store(&pool.done, 0);
    const uint32_t g = ++pool.generation;
    atomic_store(&pool.next, ((uint64_t)g << 32) | ((uint64_t)chunks << 16));
    // Only the workers that take part are woken (a broadcast wakes the others too, who go back to sleep).
    if (atomic_load(&pool.sleeping) & first_workers(allowed)) {
#if TSK_AFFINITY
        atomic_store_explicit(&pool.caller_cpu, sched_getcpu(), memory_order_relaxed);
#endif
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.work_cv);
        pthread_mutex_unlock(&pool.lock);
    }
}

// Runs fn(ctx, c) for c < chunks on up to `threads` threads; returns when all have finished.
// `work` is the job's cost in multiply-adds. Under TSK_ALONE_JOB a job runs on the caller alone;
// so does a tiny one (see job_size) unless a worker is awake (spinning): waking one costs about as
// much as the job. Tiny and medium jobs run one way or the other by kind (`kind_pairs`); run on
// two threads, a medium job wakes a sleeping worker but never waits for it to start (the caller
// claims whatever the worker has not). A worker that the scheduler delays after it has claimed a
// chunk makes the caller wait (measured: a 50 µs SpMV took twice as long at the median with the
// other core busy), so a tiny or medium job that sees one charges the delay to the pool's budget,
// and when delays exceed it such jobs back off to the caller alone for a while (`delayed`). A
// caller that waited long enough to block on `done_cv` counts its own wake-up in the delay; it
// only blocks after `spin_ns` (50 µs) of spinning, so the worker was late by then anyway.
static void run_parallel(tsk_job_fn fn, void *ctx, int64_t chunks, int threads, int64_t work) {
    // Nothing to run (and `threads` below would drop to 0: `first_workers(-1)` shifts by -1).
    if (chunks <= 0) return;
    const int size = job_size(work);
    if (threads < 1) threads = 1;
    if (threads > TSK_MAX_WORKERS + 1) threads = TSK_MAX_WORKERS + 1;
    if (threads > chunks) threads = (int)chunks;
    if (work < TSK_ALONE_JOB) threads = 1;
    const int existing = atomic_load_explicit(&pool.workers, memory_order_relaxed);
    if (size == TSK_JOB_TINY) {
        // Only an awake worker among those that would take part helps.
        const int would = threads - 1 < existing ? threads - 1 : existing;
        if ((~atomic_load_explicit(&pool.sleeping, memory_order_relaxed) & first_workers(would)) == 0) threads = 1;
    }
    // A worker that spins is not necessarily running: beside a competing process it may be
    // descheduled, so the back-off holds whether or not the workers sleep.
    const int64_t t0 = size != TSK_JOB_LARGE && threads > 1 ? now_ns() : 0;
    if (t0 && t0 < atomic_load_explicit(&pool.backoff_until, memory_order_relaxed)) threads = 1;
    if (threads <= 1 || chunks <= 1 || chunks > 0xFFFF || pthread_mutex_trylock(&pool.owner) != 0) {
        for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    const int workers = ensure_workers(threads - 1);
    if (workers == 0) {
        pthread_mutex_unlock(&pool.owner);
        for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
        return;
    }
    // Only the first `threads - 1` workers take part, however many earlier calls created.
    const int allowed = threads - 1 < workers ? threads - 1 : workers;
    job_kind *kind = t0 ? kind_of(fn, chunks, work) : NULL;
    if (kind) {
        const int pair = kind_pairs(kind);
        const int asleep = pair && !kind->pair_next && (workers > existing || (atomic_load(&pool.sleeping) & first_workers(allowed)));
        kind->pair_next = 0;
        if (!pair || asleep) {
            if (asleep) {
                // Spin through this run and a little past the next one's start.
                atomic_store(&pool.spin_until, t0 + 2 * kind->alone + atomic_load(&pool.spin_ns));
                post(fn, ctx, 0, allowed);
                kind->pair_next = 1;
            }
            for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
            if (!asleep) {
                add_sample(&kind->alone, &kind->alone_n, now_ns() - t0);
                atomic_fetch_add_explicit(&pool.stat_alone, 1, memory_order_relaxed);
            }
            pthread_mutex_unlock(&pool.owner);
            return;
        }
    }
    post(fn, ctx, chunks, allowed);
    atomic_fetch_add_explicit(&pool.stat_jobs, 1, memory_order_relaxed);
    const uint32_t g = pool.generation;
    const uint64_t ran = run_claims(g, -1);
    atomic_fetch_add_explicit(&pool.stat_caller_chunks, ran, memory_order_relaxed);
    int64_t waited = 0;
    if (atomic_load(&pool.done) < chunks) {
        const int64_t start = now_ns(), limit = atomic_load_explicit(&pool.spin_ns, memory_order_relaxed);
        for (uint32_t k = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < chunks; k++) {
            cpu_relax();
            if ((k & 63) == 0 && now_ns() - start > limit) {
                atomic_fetch_add_explicit(&pool.stat_sleeps, 1, memory_order_relaxed);
                pthread_mutex_lock(&pool.lock);
                atomic_store(&pool.caller_sleeping, 1);
                while (atomic_load(&pool.done) < chunks) pthread_cond_wait(&pool.done_cv, &pool.lock);
                atomic_store(&pool.caller_sleeping, 0);
                pthread_mutex_unlock(&pool.lock);
                break;
            }
        }
        if (t0) waited = now_ns() - start;
    }
    if (kind) {
        const int64_t end = now_ns(), own = end - t0 - waited;
        add_sample(&kind->pair, &kind->pair_n, end - t0);
        if (ran < (uint64_t)chunks) {
            // A worker ran some chunks: judge whether it kept pace with the caller.
            if (waited > own + TSK_STALL_NS) delayed(end, waited - own);
            else if (end - atomic_load_explicit(&pool.backoff_until, memory_order_relaxed) > TSK_CALM_NS)
                atomic_store_explicit(&pool.backoff, TSK_BACKOFF_MIN_NS, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&pool.owner);
}

tsk_pool_stats tsk_pool_get_stats(void) {
    tsk_pool_stats s = {
        atomic_load(&pool.stat_jobs), 0, atomic_load(&pool.stat_caller_chunks), atomic_load(&pool.stat_sleeps),
        atomic_load(&pool.stat_stalls), {0}, atomic_load(&pool.stat_alone), atomic_load(&pool.stat_delays)};
    for (int i = 0; i < TSK_MAX_WORKERS; i++) {
        const uint64_t n = atomic_load(&pool.stat_by_worker[i].chunks);
        s.worker_chunks += n;
        if (i < 8) s.worker_chunks_by_index[i] = n;
    }
    return s;
}

void tsk_pool_set_spin_ns(int64_t ns) { atomic_store(&pool.spin_ns, ns < 0 ? 0 : ns); }

// MARK: - Batch 1: sliced ELLPACK (SELL-8)
//
// The CSR SpMV pays per row: a horizontal sum, a scalar tail and the mispredicted exits of
// loops whose trip counts change from row to row (about 14 cycles a row here, a third of the
// time at 95% sparsity on 300×784). For batch 1 the AVX2 variant therefore runs a copy of the
// matrix in slices of 8 rows, one row per lane of a 256-bit accumulator. The rows are first cut
// into up to 8 chunks of contiguous rows (whole groups of 8) of about equal work, so that threads
// running different chunks write different cache lines of y; within a chunk they are sorted by
// length (longest first, ties by row) so that a slice's rows need little padding; each slice's entries
// stored step by step (step j of lane r at 8j + r), padded to an even step count with zero weights
// on the row's last column. A step is one weight load, 8 x values assembled from scalar loads and
// one FMA; a slice ends with 8 scalar stores through the permutation, with bias and activation.
// Measured (1 thread, C microbenchmark against the CSR SpMV): 300×784 at 95% 6.3 → 5.0 µs, at 90%
// 11.1 → 9.5 µs, 100×300 at 95% 1.09 → 0.76 µs, 4096×4096 at 90% 864 → 790 µs. Sorting the
// whole matrix instead of each chunk had both threads write rows all over y (300×784 at 95%,
// 2 threads, 8 chunks: 4.0 → 3.8 µs while a cache line's round trip between the cores took
// 210 ns, 6.4 → 4.8 µs while it took 760 ns).
// The copy is built on the first batch-1 product and kept with the matrix (`tsk_csr_release`).

#define TSK_SELL_CHUNKS 8

typedef struct tsk_sell {
    int32_t index_bytes;
    int64_t *offsets;   // slices + 1 element offsets; slice q holds 8 rows × an even number of steps
    int32_t *perm;      // 8 · slices: the row in each lane, or -1
    void *indices;
    float *values;
    int64_t chunks;                       // min(TSK_SELL_CHUNKS, groups of 8 rows)
    int64_t splits[TSK_SELL_CHUNKS + 1];  // first slice of each chunk (contiguous rows, about equal work)
} tsk_sell;

static void sell_free(tsk_sell *s) {
    if (!s) return;
    free(s->offsets); free(s->perm); free(s->indices); free(s->values);
    free(s);
}

typedef struct { int64_t length, row; } sell_row;

static int sell_longer_first(const void *a, const void *b) {
    const sell_row *x = (const sell_row *)a, *y = (const sell_row *)b;
    if (x->length != y->length) return x->length > y->length ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

// The SELL-8 copy of `w`, or NULL when memory runs out (the CSR SpMV is used instead).
static tsk_sell *sell_build(const tsk_csr *w) {
    const int64_t m = w->rows;
    const int wide = w->index_bytes != 2;
    if (m > INT32_MAX) return NULL;  // the permutation holds 32-bit rows
    tsk_sell *s = calloc(1, sizeof(tsk_sell));
    sell_row *order = malloc(sizeof(sell_row) * (size_t)(m > 0 ? m : 1));
    if (!s || !order) { free(order); free(s); return NULL; }
    s->index_bytes = w->index_bytes;
    // Chunks are contiguous row ranges of about equal work, in whole slices (multiples of 8 rows),
    // so that each thread writes its own part of y; rows are sorted by length within a chunk.
    // A product too small to claim chunks one by one (see `tsk_spmm`) gets 2: sorting in smaller
    // chunks pads more (300×784 at 95%, 1 thread: 5.5 µs with 2 chunks, 5.7 with 8).
    const int64_t groups = (m + 7) / 8;
    const int64_t nnz = w->offsets[m] - w->offsets[0];
    const int64_t most = job_size(nnz * 8) == TSK_JOB_LARGE ? TSK_SELL_CHUNKS : 2;
    int64_t chunks = groups < most ? groups : most;
    if (chunks < 1) chunks = 1;
    int64_t rows[TSK_SELL_CHUNKS + 1];
    tsk_split_rows(w->offsets, m, chunks, 16, rows);
    for (int64_t c = 1; c < chunks; c++) {
        int64_t r = (rows[c] + 4) / 8 * 8;
        if (r < rows[c - 1]) r = rows[c - 1];
        rows[c] = r > m ? m : r;
    }
    rows[chunks] = m;
    int64_t slices = 0;
    for (int64_t c = 0; c < chunks; c++) {
        s->splits[c] = slices;
        const int64_t r0 = rows[c], r1 = rows[c + 1];
        for (int64_t i = r0; i < r1; i++) order[i] = (sell_row){w->offsets[i + 1] - w->offsets[i], i};
        qsort(order + r0, (size_t)(r1 - r0), sizeof(sell_row), sell_longer_first);
        slices += (r1 - r0 + 7) / 8;
    }
    s->splits[chunks] = slices;
    s->chunks = chunks;
    s->offsets = malloc(sizeof(int64_t) * (size_t)(slices + 1));
    s->perm = malloc(sizeof(int32_t) * (size_t)(8 * (slices > 0 ? slices : 1)));
    sell_row *lanes = malloc(sizeof(sell_row) * (size_t)(8 * (slices > 0 ? slices : 1)));
    if (!s->offsets || !s->perm || !lanes) { free(order); free(lanes); sell_free(s); return NULL; }
    // Lane layout: slice q of chunk c takes the chunk's sorted rows 8(q - first) ..< +8.
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        for (int64_t q = s->splits[c]; q < s->splits[c + 1]; q++) {
            for (int64_t r = 0; r < 8; r++) {
                const int64_t i = rows[c] + 8 * (q - s->splits[c]) + r;
                lanes[8 * q + r] = i < rows[c + 1] ? order[i] : (sell_row){0, -1};
            }
            const int64_t longest = lanes[8 * q].length;  // sorted: the slice's first row is its longest
            s->offsets[q] = total;
            total += 8 * ((longest + 1) & ~(int64_t)1);
        }
    }
    s->offsets[slices] = total;
    free(order);
    // The kernel reads whole pairs of steps (16 entries), which the even step counts keep inside a slice.
    s->values = calloc((size_t)(total > 0 ? total : 1), sizeof(float));
    s->indices = calloc((size_t)(total > 0 ? total : 1), wide ? 4 : 2);
    if (!s->values || !s->indices) { free(lanes); sell_free(s); return NULL; }
    for (int64_t q = 0; q < slices; q++) {
        for (int64_t r = 0; r < 8; r++) {
            const int64_t lane = 8 * q + r, row = lanes[lane].row;
            s->perm[lane] = (int32_t)row;
            if (row < 0) continue;
            const int64_t n = lanes[lane].length, base = w->offsets[row];
            for (int64_t j = 0, steps = (s->offsets[q + 1] - s->offsets[q]) / 8; j < steps; j++) {
                const int64_t d = s->offsets[q] + 8 * j + r, src = j < n ? base + j : base + n - 1;
                s->values[d] = j < n ? w->values[base + j] : 0.0f;
                const int64_t col = n == 0 ? 0 : wide ? (int64_t)((const uint32_t *)w->indices)[src]
                                                      : (int64_t)((const uint16_t *)w->indices)[src];
                if (wide) ((uint32_t *)s->indices)[d] = (uint32_t)col;
                else ((uint16_t *)s->indices)[d] = (uint16_t)col;
            }
        }
    }
    free(lanes);
    return s;
}

// Cached in place of a copy that could not be built (out of memory, over 2^31 rows), so that the
// CSR SpMV runs without retrying the build on every call.
static tsk_sell sell_unavailable;

// The matrix's SELL-8 copy, built by the first caller (others racing it free theirs), or NULL.
static const tsk_sell *sell_of(const tsk_csr *w) {
    tsk_sell *s = __atomic_load_n((tsk_sell *const *)&w->spmv_cache, __ATOMIC_ACQUIRE);
    if (!s) {
        tsk_sell *built = sell_build(w);
        if (!built) built = &sell_unavailable;
        tsk_sell *expected = NULL;
        if (__atomic_compare_exchange_n((tsk_sell **)&w->spmv_cache, &expected, built, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            s = built;
        } else {
            if (built != &sell_unavailable) sell_free(built);
            s = expected;
        }
    }
    return s == &sell_unavailable ? NULL : s;
}

void tsk_csr_release(tsk_csr *w) {
    if (w->spmv_cache != &sell_unavailable) sell_free((tsk_sell *)w->spmv_cache);
    w->spmv_cache = NULL;
}

AVX2_INLINE __m256 avx2_x8_uint16_t(const float *x, const uint16_t *ind) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(avx2_x4_uint16_t(x, ind)), avx2_x4_uint16_t(x, ind + 4), 1);
}
AVX2_INLINE __m256 avx2_x8_uint32_t(const float *x, const uint32_t *ind) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(avx2_x4_uint32_t(x, ind)), avx2_x4_uint32_t(x, ind + 4), 1);
}

#define AVX2_SELL(IT)                                                                             \
    AVX2 static void avx2_sell_##IT(const tsk_sell *s, const float *x, float *y, int64_t ldy,    \
                                     const float *bias, int act, int64_t q0, int64_t q1) {       \
        for (int64_t q = q0; q < q1; q++) {                                                       \
            const float *v = s->values + s->offsets[q];                                           \
            const IT *ind = (const IT *)s->indices + s->offsets[q];                               \
            const int64_t n = s->offsets[q + 1] - s->offsets[q];                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                            \
            for (int64_t p = 0; p < n; p += 16) {                                                 \
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + p), avx2_x8_##IT(x, ind + p), a0);       \
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + p + 8), avx2_x8_##IT(x, ind + p + 8), a1); \
            }                                                                                     \
            float t[8];                                                                           \
            _mm256_storeu_ps(t, _mm256_add_ps(a0, a1));                                           \
            const int32_t *perm = s->perm + 8 * q;                                                \
            for (int r = 0; r < 8; r++) {                                                         \
                const int64_t row = perm[r];                                                      \
                if (row >= 0) y[row * ldy] = act_scalar(t[r] + (bias ? bias[row] : 0.0f), act);   \
            }                                                                                     \
        }                                                                                         \
    }

AVX2_SELL(uint16_t)
AVX2_SELL(uint32_t)

typedef struct {
    const tsk_sell *s;
    const float *x;
    float *y;
    int64_t ldy;
    const float *bias;
    int act;
    int64_t parts;  // the job's chunks: groups of consecutive chunks of `s`
} sell_job;

static void sell_chunk(void *ctx, int64_t c) {
    const sell_job *j = (const sell_job *)ctx;
    const int64_t q0 = j->s->splits[c * j->s->chunks / j->parts], q1 = j->s->splits[(c + 1) * j->s->chunks / j->parts];
    if (q0 >= q1) return;
    (j->s->index_bytes == 2 ? avx2_sell_uint16_t : avx2_sell_uint32_t)(j->s, j->x, j->y, j->ldy, j->bias, j->act, q0, q1);
}

typedef struct {
    int variant;
    const tsk_csr *w;
    const float *x;
    int64_t ldx;
    float *y;
    int64_t ldy;
    int64_t batch;
    const float *bias;
    int act;
    const int64_t *splits;
    const float *xp;
    int64_t panels;
    int64_t panel_chunks;  // panel-parallel mode: chunks below this each pack and run one panel
} spmm_job;

static void spmm_chunk(void *ctx, int64_t c) {
    const spmm_job *j = (const spmm_job *)ctx;
    rows_impl(j->variant, j->w, j->x, j->ldx, j->y, j->ldy, j->batch, j->bias, j->act,
              j->splits[c], j->splits[c + 1], j->xp, j->panels);
}

// Panel-parallel mode: chunk c < panel_chunks packs panel c of X into the running thread's own
// scratch and sweeps every row over it; the chunks after those split the rows of the columns
// that do not fill a panel (run unpacked).
static void spmm_panel_chunk(void *ctx, int64_t c) {
    const spmm_job *j = (const spmm_job *)ctx;
    const int64_t pw = panel_width(j->variant);
    if (c < j->panel_chunks) {
        const float *xp = pack_panels(j->x + c * pw, j->ldx, j->w->columns, pw, 1);
        // Without scratch the panel's columns run unpacked.
        rows_impl(j->variant, j->w, j->x + c * pw, j->ldx, j->y + c * pw, j->ldy, pw, j->bias, j->act,
                  0, j->w->rows, xp, xp ? 1 : 0);
        return;
    }
    const int64_t r = c - j->panel_chunks, j0 = j->panel_chunks * pw;
    rows_impl(j->variant, j->w, j->x + j0, j->ldx, j->y + j0, j->ldy, j->batch - j0, j->bias, j->act,
              j->splits[r], j->splits[r + 1], NULL, 0);
}

void tsk_spmm(int variant, int threads, const tsk_csr *w, const float *x, int64_t ldx,
              float *y, int64_t ldy, int64_t batch, const float *bias, int act,
              const int64_t *splits, int64_t chunks) {
    if (threads < 1) threads = 1;
    int64_t panels = panel_count(variant, w, batch);
    // An SpMV non-zero costs about as much as 8 multiply-adds of a batched product (0.45–0.5 ns
    // against 0.06–0.09 ns per multiply-add here), and a batch under 8 columns runs one masked
    // vector per non-zero, so a non-zero counts as at least 8 multiply-adds against the threshold.
    const int64_t nnz = w->offsets[w->rows] - w->offsets[0];
    const int64_t work = nnz * (batch < 8 ? 8 : batch);
    const int size = job_size(work);
    if (batch == 1 && ldx == 1 && variant == TSK_VARIANT_AVX2 && nnz > 0) {
        const tsk_sell *s = sell_of(w);
        if (s) {
            // Large products claim the chunks one by one; smaller ones take one group of chunks
            // per thread, since every claim moves a cache line between the cores.
            const int64_t parts = size == TSK_JOB_LARGE || threads > s->chunks ? s->chunks : threads;
            sell_job job = {s, x, y, ldy, bias, act, parts};
            run_parallel(sell_chunk, &job, parts, threads, work);
            return;
        }
    }
    // With at least as many panels as threads, the threads split the batch instead of the rows:
    // each packs its own panels (packing is no longer a serial step before the product) and
    // sweeps all rows over them, one claim per panel. Measured (AVX2, 300×784 at 90%, B = 128,
    // 2 threads): row split with one packing caller 0.33 ms, panel split 0.16 ms (1 thread 0.27 ms).
    if (threads >= 2 && panels >= threads && size != TSK_JOB_TINY) {
        const int64_t tail = batch - panels * panel_width(variant);
        spmm_job job = {variant, w, x, ldx, y, ldy, batch, bias, act, splits, NULL, 0, panels};
        run_parallel(spmm_panel_chunk, &job, panels + (tail > 0 ? chunks : 0), threads, work);
        return;
    }
    // Otherwise the caller packs once and the threads split the rows, reading its panels; an X
    // that is one aligned panel already (a compiled network's slab of 64 samples) is used as is.
    const int64_t pw = panel_width(variant);
    const float *xp = NULL;
    if (panels == 1 && batch == pw && ldx == pw && ((uintptr_t)x & 63) == 0) xp = x;
    else if (panels) xp = pack_panels(x, ldx, w->columns, pw, panels);
    if (!xp) panels = 0;
    spmm_job job = {variant, w, x, ldx, y, ldy, batch, bias, act, splits, xp, panels, 0};
    run_parallel(spmm_chunk, &job, chunks, threads, work);
}

void tsk_parallel_for(int threads, int64_t count, int64_t work, void (*fn)(void *ctx, int64_t index), void *ctx) {
    run_parallel(fn, ctx, count, threads, work);
}

int64_t tsk_panel_width(int variant) { return panel_width(variant); }

// MARK: - Helpers for feature-major dense layers

void tsk_bias_act(float *y, int64_t ldy, int64_t rows, int64_t batch, const float *bias, int act) {
    for (int64_t i = 0; i < rows; i++) {
        float *yr = y + i * ldy;
        const float b = bias ? bias[i] : 0.0f;
        switch (act) {
        case TSK_ACT_RELU:
            for (int64_t j = 0; j < batch; j++) { const float v = yr[j] + b; yr[j] = v > 0.0f ? v : 0.0f; }
            break;
        case TSK_ACT_IDENTITY:
            for (int64_t j = 0; j < batch; j++) yr[j] += b;
            break;
        default:
            for (int64_t j = 0; j < batch; j++) yr[j] = act_scalar(yr[j] + b, act);
        }
    }
}

// 8×8 block transpose in registers: rows of `src` (stride ss) become columns of `dst` (stride ds).
AVX2_INLINE void avx2_transpose8(const float *src, int64_t ss, float *dst, int64_t ds) {
    __m256 r0 = _mm256_loadu_ps(src + 0 * ss), r1 = _mm256_loadu_ps(src + 1 * ss);
    __m256 r2 = _mm256_loadu_ps(src + 2 * ss), r3 = _mm256_loadu_ps(src + 3 * ss);
    __m256 r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss);
    __m256 r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ds, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ds, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

AVX2 static void avx2_transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
    enum { T = 64 };
    for (int64_t i0 = 0; i0 < rows; i0 += T) {
        const int64_t i1 = i0 + T < rows ? i0 + T : rows;
        for (int64_t j0 = 0; j0 < cols; j0 += T) {
            const int64_t j1 = j0 + T < cols ? j0 + T : cols;
            int64_t i = i0;
            for (; i + 8 <= i1; i += 8) {
                int64_t j = j0;
                for (; j + 8 <= j1; j += 8) avx2_transpose8(src + i * cols + j, cols, dst + j * rows + i, rows);
                for (; j < j1; j++)
                    for (int64_t k = 0; k < 8; k++) dst[j * rows + i + k] = src[(i + k) * cols + j];
            }
            for (; i < i1; i++)
                for (int64_t j = j0; j < j1; j++) dst[j * rows + i] = src[i * cols + j];
        }
    }
}

void tsk_transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
    if (tsk_best_variant() >= TSK_VARIANT_AVX2) {
        avx2_transpose(src, rows, cols, dst);
        return;
    }
    enum { T = 32 };
    for (int64_t i0 = 0; i0 < rows; i0 += T) {
        const int64_t i1 = i0 + T < rows ? i0 + T : rows;
        for (int64_t j0 = 0; j0 < cols; j0 += T) {
            const int64_t j1 = j0 + T < cols ? j0 + T : cols;
            for (int64_t i = i0; i < i1; i++)
                for (int64_t j = j0; j < j1; j++) dst[j * rows + i] = src[i * cols + j];
        }
    }
}

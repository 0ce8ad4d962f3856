// The vector primitives of one instruction set, selected by TSK_ISA before each inclusion:
//
//   #define TSK_ISA TSK_ISA_AVX2
//   #include "simd.h"
//   ... kernels written with the primitives below, names wrapped in TSK_N(...) ...
//
// Deliberately without an include guard: a file that instantiates its kernels for several
// instruction sets includes it once per set, and each inclusion replaces the last one's
// definitions. The kernels only use these primitives, so the scalar, AVX2, AVX-512 and NEON forms
// are one algorithm at 1, 8, 16 and 4 lanes:
//
//   TSK_LANES             floats per vector
//   TSK_SFX               the suffix of this set's function names; TSK_N(name) appends it
//   TSK_KERNEL            attributes of a kernel function (the target attribute, if any)
//   TSK_INLINE            attributes of a helper inlined into kernels
//   TSK_VEC               the vector type
//   VZERO() VBCAST(s)     all lanes 0, all lanes s
//   VLOAD(p) VLOADA(p)    LANES floats from p (VLOADA: p is 64-byte aligned)
//   VSTORE(p, v)          LANES floats to p
//   VFMA(a, b, c)         a·b + c, fused where the set has it
//   VADD(a, b) VRELU(v)   a + b, max(v, 0)
//   TSK_MASK VMASK(n) VLOADM(p, m) VSTOREM(p, m, v)
//                         the first n < LANES lanes: a mask, a load (other lanes 0), a store
//   TSK_N(vx_uint16_t)(x, ind), TSK_N(vx_uint32_t)(x, ind)
//                         x[ind[0]], …, x[ind[LANES - 1]] as a vector (the SpMV's input)
//   TSK_PANEL_COLUMNS     the batch columns of a packed panel (8 or 4 vectors: one accumulator
//                         each), 0 when the set does not pack
//   TSK_SELL              whether the set has the sliced-ELLPACK SpMV (a SELL-LANES copy)

#define TSK_ISA_SCALAR 0
#define TSK_ISA_AVX2 1
#define TSK_ISA_AVX512 2
#define TSK_ISA_NEON 3

#undef TSK_LANES
#undef TSK_SFX
#undef TSK_KERNEL
#undef TSK_INLINE
#undef TSK_VEC
#undef TSK_MASK
#undef TSK_PANEL_COLUMNS
#undef TSK_SELL
#undef VZERO
#undef VBCAST
#undef VLOAD
#undef VLOADA
#undef VSTORE
#undef VFMA
#undef VADD
#undef VRELU
#undef VMASK
#undef VLOADM
#undef VSTOREM

#define TSK_CAT2_(a, b) a##_##b
#define TSK_CAT2(a, b) TSK_CAT2_(a, b)
#define TSK_N(name) TSK_CAT2(name, TSK_SFX)

#if TSK_ISA == TSK_ISA_SCALAR
// The portable reference: one lane, plain C (no packing, no SELL copy).
#define TSK_LANES 1
#define TSK_SFX scalar
#define TSK_KERNEL
#define TSK_INLINE __attribute__((always_inline)) static inline
#define TSK_VEC float
#define VZERO() 0.0f
#define VBCAST(s) ((float)(s))
#define VLOAD(p) (*(const float *)(p))
#define VLOADA(p) (*(const float *)(p))
#define VSTORE(p, v) (*(float *)(p) = (v))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VADD(a, b) ((a) + (b))
#define VRELU(v) ((v) > 0.0f ? (v) : 0.0f)
#define TSK_MASK int64_t
#define VMASK(n) ((int64_t)(n))
#define VLOADM(p, m) ((m) > 0 ? *(const float *)(p) : 0.0f)
#define VSTOREM(p, m, v) do { if ((m) > 0) *(float *)(p) = (v); } while (0)
#define TSK_PANEL_COLUMNS 0
#define TSK_SELL 0

#elif TSK_ISA == TSK_ISA_AVX2
#include <immintrin.h>
#define TSK_LANES 8
#define TSK_SFX avx2
#define TSK_KERNEL __attribute__((target("avx2,fma")))
#define TSK_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define TSK_VEC __m256
#define VZERO() _mm256_setzero_ps()
#define VBCAST(s) _mm256_set1_ps(s)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADA(p) _mm256_load_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VRELU(v) _mm256_max_ps(v, _mm256_setzero_ps())
#define TSK_MASK __m256i
#define VMASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define VLOADM(p, m) _mm256_maskload_ps(p, m)
#define VSTOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define TSK_PANEL_COLUMNS 64
#define TSK_SELL 1

#elif TSK_ISA == TSK_ISA_AVX512
#include <immintrin.h>
#define TSK_LANES 16
#define TSK_SFX avx512
#define TSK_KERNEL __attribute__((target("avx512f")))
#define TSK_INLINE __attribute__((target("avx512f"), always_inline)) static inline
#define TSK_VEC __m512
#define VZERO() _mm512_setzero_ps()
#define VBCAST(s) _mm512_set1_ps(s)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADA(p) _mm512_load_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VRELU(v) _mm512_max_ps(v, _mm512_setzero_ps())
#define TSK_MASK __mmask16
#define VMASK(n) ((__mmask16)((1u << (n)) - 1u))
#define VLOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
// 64 columns (4 vectors), as wide as AVX2's panels: a batch of 128 makes two panels, which two
// threads split between them, and a compiled network cuts slabs at batch 128. Measured (topiary
// bench, 300×784, B = 128, 2 threads, 3 alternating runs): 128-column panels 0.125 ms at 90%,
// against 0.066 for AVX2's 64 columns.
#define TSK_PANEL_COLUMNS 64
#define TSK_SELL 1

#elif TSK_ISA == TSK_ISA_NEON
#include <arm_neon.h>
#define TSK_LANES 4
#define TSK_SFX neon
#define TSK_KERNEL
#define TSK_INLINE __attribute__((always_inline)) static inline
#define TSK_VEC float32x4_t
#define VZERO() vdupq_n_f32(0.0f)
#define VBCAST(s) vdupq_n_f32(s)
#define VLOAD(p) vld1q_f32(p)
#define VLOADA(p) vld1q_f32(p)
#define VSTORE(p, v) vst1q_f32(p, v)
#define VFMA(a, b, c) vfmaq_f32(c, a, b)
#define VADD(a, b) vaddq_f32(a, b)
#define VRELU(v) vmaxq_f32(v, vdupq_n_f32(0.0f))
// NEON has no masked loads: a tail goes through a zeroed buffer.
#define TSK_MASK int64_t
#define VMASK(n) ((int64_t)(n))
#define VLOADM(p, m) tsk_neon_loadm(p, m)
#define VSTOREM(p, m, v) tsk_neon_storem(p, m, v)
#ifndef TSK_NEON_TAILS
#define TSK_NEON_TAILS
static inline float32x4_t tsk_neon_loadm(const float *p, int64_t n) {
    float t[4] = {0, 0, 0, 0};
    memcpy(t, p, (size_t)n * sizeof(float));
    return vld1q_f32(t);
}
static inline void tsk_neon_storem(float *p, int64_t n, float32x4_t v) {
    float t[4];
    vst1q_f32(t, v);
    memcpy(p, t, (size_t)n * sizeof(float));
}
#endif
#define TSK_PANEL_COLUMNS 32
#define TSK_SELL 1

#else
#error "unknown TSK_ISA"
#endif

// MARK: - Assembling x[ind[0 ..< LANES]]
//
// From scalar loads, four at a time: measured 2× faster than vgatherdps (AVX2) on the AMD Zen
// development machine, and than vgatherdps zmm at 16 lanes on this Zen 4 (SELL-16, 1 thread,
// 300×784 at 90%: 12.6 against 23.6 µs, 4096² at 90% 1.13 against 1.69 ms, medians of 15, three
// alternating runs). Four 16-bit indices come in two 32-bit loads (each split with one
// zero-extension and one shift; measured 5–10% faster than one 64-bit load and six shifts and
// masks at 300×784, 90–95%, where the SpMV is bound by the instructions it issues).

#ifndef TSK_X4_HELPERS
#define TSK_X4_HELPERS
#define TSK_X4_U16(x, ind, a, b, c, d)                                                             \
    do {                                                                                           \
        uint32_t lo_, hi_;                                                                         \
        memcpy(&lo_, (ind), 4);                                                                    \
        memcpy(&hi_, (ind) + 2, 4);                                                                \
        a = (x)[lo_ & 0xFFFF]; b = (x)[lo_ >> 16]; c = (x)[hi_ & 0xFFFF]; d = (x)[hi_ >> 16];      \
    } while (0)
#define TSK_X4_U32(x, ind, a, b, c, d)                                                             \
    do { a = (x)[(ind)[0]]; b = (x)[(ind)[1]]; c = (x)[(ind)[2]]; d = (x)[(ind)[3]]; } while (0)
#endif

#if TSK_ISA == TSK_ISA_SCALAR
TSK_INLINE float TSK_N(vx_uint16_t)(const float *x, const uint16_t *ind) { return x[ind[0]]; }
TSK_INLINE float TSK_N(vx_uint32_t)(const float *x, const uint32_t *ind) { return x[ind[0]]; }

#elif TSK_ISA == TSK_ISA_AVX2 || TSK_ISA == TSK_ISA_AVX512
TSK_INLINE __m128 TSK_N(x4_uint16_t)(const float *x, const uint16_t *ind) {
    float a, b, c, d;
    TSK_X4_U16(x, ind, a, b, c, d);
    return _mm_set_ps(d, c, b, a);
}
TSK_INLINE __m128 TSK_N(x4_uint32_t)(const float *x, const uint32_t *ind) {
    float a, b, c, d;
    TSK_X4_U32(x, ind, a, b, c, d);
    return _mm_set_ps(d, c, b, a);
}
#if TSK_ISA == TSK_ISA_AVX2
#define TSK_VX(IT)                                                                                 \
    TSK_INLINE __m256 TSK_N(vx_##IT)(const float *x, const IT *ind) {                              \
        return _mm256_insertf128_ps(_mm256_castps128_ps256(TSK_N(x4_##IT)(x, ind)), TSK_N(x4_##IT)(x, ind + 4), 1); \
    }
#else
#define TSK_VX(IT)                                                                                 \
    TSK_INLINE __m512 TSK_N(vx_##IT)(const float *x, const IT *ind) {                              \
        __m512 v = _mm512_castps128_ps512(TSK_N(x4_##IT)(x, ind));                                 \
        v = _mm512_insertf32x4(v, TSK_N(x4_##IT)(x, ind + 4), 1);                                  \
        v = _mm512_insertf32x4(v, TSK_N(x4_##IT)(x, ind + 8), 2);                                  \
        return _mm512_insertf32x4(v, TSK_N(x4_##IT)(x, ind + 12), 3);                              \
    }
#endif
TSK_VX(uint16_t)
TSK_VX(uint32_t)
#undef TSK_VX

#elif TSK_ISA == TSK_ISA_NEON
TSK_INLINE float32x4_t TSK_N(vx_uint16_t)(const float *x, const uint16_t *ind) {
    float a, b, c, d;
    TSK_X4_U16(x, ind, a, b, c, d);
    return (float32x4_t){a, b, c, d};
}
TSK_INLINE float32x4_t TSK_N(vx_uint32_t)(const float *x, const uint32_t *ind) {
    float a, b, c, d;
    TSK_X4_U32(x, ind, a, b, c, d);
    return (float32x4_t){a, b, c, d};
}
#endif

/// act(v) lane by lane: ReLU and identity in vector form, the others through tsk_act_scalar.
TSK_INLINE TSK_VEC TSK_N(vact)(TSK_VEC v, int act) {
    if (act == TSK_ACT_RELU) return VRELU(v);
    if (act == TSK_ACT_IDENTITY) return v;
    float t[TSK_LANES];
    VSTORE(t, v);
    for (int k = 0; k < TSK_LANES; k++) t[k] = tsk_act_scalar(t[k], act);
    return VLOAD(t);
}

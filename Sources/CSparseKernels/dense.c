// Helpers for feature-major dense layers: bias and activation after a dense `sgemm`, transposes.
#include "internal.h"

#if TSK_X86
#include <immintrin.h>
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define AVX2 __attribute__((target("avx2,fma")))
#endif

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
            for (int64_t j = 0; j < batch; j++) yr[j] = tsk_act_scalar(yr[j] + b, act);
        }
    }
}

#if TSK_X86
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

#endif

void tsk_transpose(const float *src, int64_t rows, int64_t cols, float *dst) {
#if TSK_X86
    // The AVX2 block transpose serves the AVX-512 machines too (it is bound by memory, not width).
    if (tsk_variant_supported(TSK_VARIANT_AVX2)) {
        avx2_transpose(src, rows, cols, dst);
        return;
    }
#endif
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


// Internal declarations shared by the kernels' files (not part of the C API in CSparseKernels.h).
//
// The parts, one file each:
//   dispatch.c  CPU detection, the variant's kernel tables, `tsk_spmm` (which form runs a product)
//   pack.c      packing X into panels of the batch, per-thread scratch
//   spmm.c      the CSR row kernels and the panel kernels (batch > 1, and the CSR SpMV)
//   sell.c      the sliced-ELLPACK copy of a matrix and its SpMV (batch 1)
//   pool.c      the thread pool (`tsk_parallel_for`)
//   dense.c     bias and activation over a dense product, transposes
// Each kernel is written once, in terms of the vector primitives of simd.h, and instantiated for
// every instruction set (scalar, AVX2, AVX-512, NEON) with the vector width as a parameter.
#ifndef TOPIARY_CSPARSEKERNELS_INTERNAL_H
#define TOPIARY_CSPARSEKERNELS_INTERNAL_H

#include "CSparseKernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define TSK_X86 1
#else
#define TSK_X86 0
#endif
#if defined(__aarch64__)
#define TSK_ARM64 1
#else
#define TSK_ARM64 0
#endif

/// The activation of one value (the reference every vector form applies lane by lane, except
/// ReLU and identity, which it applies itself).
static inline float tsk_act_scalar(float v, int act) {
    switch (act) {
    case TSK_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case TSK_ACT_TANH: return tanhf(v);
    case TSK_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

// MARK: - Kernel tables (dispatch.c, spmm.c, sell.c)

/// Rows `r0 ..< r1` of `Y = act(W·X + b)`; with `panels > 0` the first `panels` panels of the batch
/// come packed at `xp` (see pack.c) and the rest of the batch is read from `x`.
typedef void (*tsk_rows_fn)(const tsk_csr *w, const float *x, int64_t ldx, float *y, int64_t ldy,
                            int64_t batch, const float *bias, int act, int64_t r0, int64_t r1,
                            const float *xp, int64_t panels);

typedef struct tsk_sell tsk_sell;

/// Slices `q0 ..< q1` of a sliced-ELLPACK SpMV (sell.c).
typedef void (*tsk_sell_fn)(const tsk_sell *s, const float *x, float *y, int64_t ldy,
                            const float *bias, int act, int64_t q0, int64_t q1);

/// One instruction set's kernels: the same source at `lanes` lanes.
typedef struct tsk_kernels {
    int lanes;               ///< floats per vector
    int64_t panel;           ///< batch columns per packed panel (8 vectors), 0: does not pack
    const tsk_rows_fn (*rows)[2];  ///< rows[32-bit indices][prefetch X rows]
    const tsk_sell_fn (*sell)[2];  ///< sell[32-bit indices][prefetch]; NULL entries: no sliced-ELLPACK form (batch 1 runs CSR rows)
} tsk_kernels;

/// The kernels of `variant` (the scalar ones for a variant this build does not have).
const tsk_kernels *tsk_kernels_of(int variant);

/// The row kernels of each instruction set (spmm.c) and its SELL SpMVs (sell.c).
#define TSK_DECLARE_ISA(SFX)                                                                       \
    extern const tsk_rows_fn tsk_rows_##SFX[2][2];                                                 \
    extern const tsk_sell_fn tsk_sell_##SFX[2][2];
TSK_DECLARE_ISA(scalar)
#if TSK_X86
TSK_DECLARE_ISA(avx2)
TSK_DECLARE_ISA(avx512)
#endif
#if TSK_ARM64
TSK_DECLARE_ISA(neon)
#endif

// How many non-zeros ahead the X row of a non-zero is prefetched (its column is known early).
// Unpacked passes prefetch only when X is larger than TSK_PREFETCH_BYTES (smaller X stays in L1
// and L2 anyway).
#define TSK_PREFETCH_BYTES (96 * 1024)
// Panels of X are packed only for a W with at least this many non-zeros per column (tsk_spmm).
#define TSK_PACK_MIN_USES 20
#ifndef TSK_PREFETCH
#define TSK_PREFETCH 12
#endif

// MARK: - Panels (pack.c)

/// Packs the first `panels · pw` columns of X (K × ldx) into panels of `pw` columns, panel t at
/// `dst + t·K·pw` with rows of `pw` floats, in the calling thread's scratch; NULL when the scratch
/// cannot be allocated.
const float *tsk_pack_panels(const float *x, int64_t ldx, int64_t k, int64_t pw, int64_t panels);

/// How many full panels of `pw` columns a product uses (none for small batches or an empty W).
int64_t tsk_panel_count(int64_t pw, const tsk_csr *w, int64_t batch);

// MARK: - Sliced ELLPACK (sell.c)

/// The matrix's SELL-`lanes` copy (built on first use and cached in `w->spmv_cache`), or NULL.
const tsk_sell *tsk_sell_of(const tsk_csr *w, int lanes);

/// Whether the copy is large enough to run the SpMV that prefetches it (see sell_body.h).
int tsk_sell_prefetch(const tsk_sell *s);

// The prefetch distance (entries) and the copy size from which the SELL SpMV prefetches.
#define TSK_SELL_PREFETCH 512
#define TSK_SELL_PREFETCH_BYTES (1 << 21)

/// Runs `Y = act(W·x + b)` at batch 1 from the copy on up to `threads` threads.
void tsk_sell_run(const tsk_sell *s, tsk_sell_fn fn, int threads, const float *x, float *y,
                  int64_t ldy, const float *bias, int act, int64_t work);

// MARK: - Thread pool (pool.c)

typedef void (*tsk_job_fn)(void *ctx, int64_t chunk);

// Job sizes, in multiply-adds (nnz · max(batch, 8)), for `tsk_run_parallel`:
//   under TSK_ALONE_JOB (under ~0.5 µs): always the caller alone;
//   tiny   (< TSK_TINY_JOB, under ~4 µs here): the pool only if a worker is awake (spinning);
//   medium (< TSK_SMALL_JOB, under ~60 µs): wakes a sleeping worker;
//   large: always the pool.
// Tiny and medium jobs run on the caller alone while a back-off lasts (delayed workers over budget).
#define TSK_ALONE_JOB (1 << 13)
#define TSK_TINY_JOB (1 << 16)
#define TSK_SMALL_JOB (1 << 20)
enum { TSK_JOB_LARGE = 0, TSK_JOB_MEDIUM = 1, TSK_JOB_TINY = 2 };

static inline int tsk_job_size(int64_t work) {
    return work < TSK_TINY_JOB ? TSK_JOB_TINY : work < TSK_SMALL_JOB ? TSK_JOB_MEDIUM : TSK_JOB_LARGE;
}

// The per-kind ladder of thread counts (pool.c): rung r runs min(2^r, threads) threads, and a
// call of `threads` threads has `tsk_rungs(threads)` rungs (1, 2, 4, … up to `threads`).
#define TSK_RUNGS 7
#define TSK_RETIME 32
int tsk_rungs(int threads);
int tsk_rung_threads(int rung, int threads);
// The fastest rung of `time` (ns per rung): a rung must be 3% faster than every rung below it.
int tsk_kind_best(const int64_t *time, int rungs);
// The rung of a kind's run number `runs` (from 1): each rung in turn until every rung has 3
// samples (`n`), then the best, and every TSK_RETIME-th run a neighbour of the best.
int tsk_kind_rung(int64_t runs, const int64_t *time, const uint32_t *n, int rungs);

/// Runs fn(ctx, c) for c < chunks on up to `threads` threads; returns when all have finished.
void tsk_run_parallel(tsk_job_fn fn, void *ctx, int64_t chunks, int threads, int64_t work);

/// The threads a product of `work` multiply-adds over `chunks` chunks can use well: at most one
/// per chunk, and no more than keep each thread busy for at least TSK_THREAD_WORK multiply-adds.
int tsk_useful_threads(int threads, int64_t chunks, int64_t work);

#endif

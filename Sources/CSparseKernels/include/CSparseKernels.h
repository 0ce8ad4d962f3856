// Sparse kernels for Topiary (implementation detail, not API: use Topiary's `SparseKernels`).
//
// Y = act(W · X + b) with W in CSR (M × K), X feature-major (K × B, row stride ldx, the batch
// contiguous) and Y feature-major (M × B, row stride ldy). One source per kernel, instantiated at
// several vector widths: a portable scalar form (1 lane), AVX2/FMA (8) and AVX-512 (16) with
// per-function target attributes, NEON (4) on aarch64; chosen once at run time from the CPU's
// features. Products can be split across a pool of threads (up to one per CPU the process may
// use) that spins only briefly before blocking.
#ifndef TOPIARY_CSPARSEKERNELS_H
#define TOPIARY_CSPARSEKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Activation codes (same order as Topiary's `Activation`).
enum {
    TSK_ACT_IDENTITY = 0,
    TSK_ACT_RELU = 1,
    TSK_ACT_TANH = 2,
    TSK_ACT_SIGMOID = 3,
};

/// Kernel variants.
enum {
    TSK_VARIANT_SCALAR = 0,
    TSK_VARIANT_AVX2 = 1,
    TSK_VARIANT_AVX512 = 2,
    TSK_VARIANT_NEON = 3,  ///< aarch64 only
};

/// A CSR matrix view. `indices` are `uint16_t` when `index_bytes == 2`, else `uint32_t`.
/// Row i holds entries `offsets[i] ..< offsets[i + 1]`, column indices sorted and `< columns`.
/// `spmv_cache` starts NULL: the kernels keep a batch-1 copy of the matrix there (built on the
/// first batch-1 product, safely if several threads race), freed by `tsk_csr_release`. So the
/// struct must be writable (though products take it as `const`), its values and indices must not
/// change after a batch-1 product, and of struct copies sharing a cache only one may be released.
/// The copy pads rows with zero weights on the row's last column (column 0 for an empty row): an
/// infinite input there gives NaN, as the dense product over the masked weights does.
typedef struct tsk_csr {
    int64_t rows;
    int64_t columns;
    const int64_t *offsets;
    const void *indices;
    int32_t index_bytes;
    const float *values;
    void *spmv_cache;
} tsk_csr;

/// Frees what the kernels cached with `w` (call before freeing the matrix; not concurrently
/// with a product on it).
void tsk_csr_release(tsk_csr *w);

/// Whether this CPU can run `variant`.
int tsk_variant_supported(int variant);

/// The fastest variant this CPU supports (detected once), or the one the environment variable
/// `TOPIARY_KERNELS` names (`scalar`, `avx2`, `avx512`, `neon`) when the CPU supports it.
int tsk_best_variant(void);

/// The CPUs this process may run on (`sched_getaffinity`, read once; at least 1): the thread
/// count a caller that wants the whole machine passes, and what row splits should serve.
int tsk_cpu_count(void);

/// Writes `parts + 1` row boundaries into `splits` so that each part holds about the same
/// number of non-zeros plus a per-row cost (`row_cost` non-zeros' worth per row).
void tsk_split_rows(const int64_t *offsets, int64_t rows, int64_t parts, int64_t row_cost,
                    int64_t *splits);

/// All rows of `Y = act(W·X + b)`, on up to `threads` threads (the caller and pool workers) that
/// claim work dynamically: with at least one packed panel of the batch per thread, whole panels
/// (each thread packs its own), then the row ranges `splits[c] ..< splits[c + 1]`, `c < chunks`, of
/// the columns left over; otherwise those row ranges over the whole batch. With one thread, or
/// when the pool is busy with another caller, runs everything on the calling thread; so do small
/// products, as `tsk_parallel_for` says; the panel split needs a product of at least 2^16. Threads
/// past the second are used only for about 2^17 multiply-adds each. At batch 1 with `ldx == 1`
/// the vector variants run a sliced-ELLPACK copy of `w` (slices as tall as their vectors' lanes)
/// cached in `w->spmv_cache`, split by its own chunks of rows (not `splits`). The same inputs give
/// the same bits whichever threads run the chunks.
void tsk_spmm(int variant, int threads, const tsk_csr *w, const float *x, int64_t ldx,
              float *y, int64_t ldy, int64_t batch, const float *bias, int act,
              const int64_t *splits, int64_t chunks);

/// Runs `fn(ctx, i)` for every `i < count` on up to `threads` threads (the caller and the pool,
/// claiming indices dynamically, as `tsk_spmm` does); returns when all have run. `work` is the
/// job's cost in multiply-adds (a sparse product counts `nnz · max(batch, 8)`): under 2^13 the
/// caller runs it alone; under 2^16 the pool helps only if a worker is already awake; under 2^20
/// the caller times each kind of job (`fn`, `count`, `work`, `threads`) on 1, 2, 4, … up to
/// `threads` threads and runs it on the fastest count, and delayed workers whose cost exceeds a
/// small budget back such jobs off to
/// the caller for a while; from 2^20
/// the pool always takes part.
/// `fn` must not call `tsk_parallel_for` or a multi-threaded `tsk_spmm` itself (those would run
/// single-threaded).
void tsk_parallel_for(int threads, int64_t count, int64_t work, void (*fn)(void *ctx, int64_t index), void *ctx);

/// The batch columns per packed panel of `variant` (0 when it does not pack): a feature-major X
/// of exactly this many columns, row stride equal to it and 64-byte aligned already is a panel,
/// and `tsk_spmm` reads it in place instead of packing a copy.
int64_t tsk_panel_width(int variant);

/// `Y[i, j] = act(Y[i, j] + bias[i])` over a feature-major `rows × batch` buffer (row stride ldy).
void tsk_bias_act(float *y, int64_t ldy, int64_t rows, int64_t batch, const float *bias, int act);

/// `dst = srcᵀ`: `src` is `rows × cols` row-major, `dst` is `cols × rows` row-major.
void tsk_transpose(const float *src, int64_t rows, int64_t cols, float *dst);

/// Counters of the thread pool, for benchmarks and tests.
typedef struct tsk_pool_stats {
    uint64_t jobs;          ///< jobs posted to workers
    uint64_t worker_chunks; ///< chunks run by workers
    uint64_t caller_chunks; ///< chunks run by the posting thread
    uint64_t sleeps;        ///< times a thread blocked instead of spinning
    uint64_t stalls;        ///< back-offs: delayed workers (see `delays`) cost more than the delay budget
    uint64_t worker_chunks_by_index[64]; ///< chunks run by each pool worker (at most 63), by creation order
    uint64_t alone;         ///< tiny or medium jobs run on the caller alone because that was faster for their kind
    uint64_t delays;        ///< a tiny or medium job's caller waited for a delayed worker, or a spinning worker was descheduled
    uint64_t workers;       ///< pool workers created so far (the entries of `worker_chunks_by_index` in use)
} tsk_pool_stats;

/// A snapshot of the pool counters.
tsk_pool_stats tsk_pool_get_stats(void);

/// How long (nanoseconds) an idle worker, or a caller waiting for a worker, spins before blocking.
void tsk_pool_set_spin_ns(int64_t ns);

/// Ends a running back-off, resets its length and empties the delay budget (for tests).
void tsk_pool_reset_backoff(void);

#ifdef __cplusplus
}
#endif

#endif

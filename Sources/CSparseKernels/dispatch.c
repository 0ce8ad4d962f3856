// Dispatch: which instruction sets the CPU has, the kernels of each variant, and which form of
// the kernels runs a product (`tsk_spmm`: sliced ELLPACK at batch 1, panels split across threads,
// or rows split across threads over panels packed once).
#define _GNU_SOURCE
#include "internal.h"

#include <stdatomic.h>

int tsk_variant_supported(int variant) {
    switch (variant) {
    case TSK_VARIANT_SCALAR: return 1;
#if TSK_X86
    case TSK_VARIANT_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TSK_VARIANT_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f");
#endif
#if TSK_ARM64
    case TSK_VARIANT_NEON: return 1;  // Advanced SIMD is part of the aarch64 baseline
#endif
    default: return 0;
    }
}

static _Atomic int best_variant = -1;

// The `TOPIARY_KERNELS` environment variable (scalar, avx2, avx512, neon) names the variant to
// use instead of the fastest, when this CPU supports it (for measurements and for checking a
// narrower form on a wider machine); anything else is ignored.
static int variant_from_environment(void) {
    const char *e = getenv("TOPIARY_KERNELS");
    if (!e) return -1;
    static const char *const names[] = {"scalar", "avx2", "avx512", "neon"};
    for (int v = 0; v < 4; v++)
        if (strcmp(e, names[v]) == 0) return tsk_variant_supported(v) ? v : -1;
    return -1;
}

int tsk_best_variant(void) {
    int v = atomic_load_explicit(&best_variant, memory_order_relaxed);
    if (v >= 0) return v;
    v = variant_from_environment();
    if (v < 0)
        v = tsk_variant_supported(TSK_VARIANT_AVX512) ? TSK_VARIANT_AVX512
            : tsk_variant_supported(TSK_VARIANT_AVX2) ? TSK_VARIANT_AVX2
            : tsk_variant_supported(TSK_VARIANT_NEON) ? TSK_VARIANT_NEON
                                                      : TSK_VARIANT_SCALAR;
    atomic_store_explicit(&best_variant, v, memory_order_relaxed);
    return v;
}

// MARK: - Kernel tables

static const tsk_kernels kernels_scalar = {1, 0, tsk_rows_scalar, tsk_sell_scalar};
#if TSK_X86
static const tsk_kernels kernels_avx2 = {8, 64, tsk_rows_avx2, tsk_sell_avx2};
static const tsk_kernels kernels_avx512 = {16, 64, tsk_rows_avx512, tsk_sell_avx512};
#endif
#if TSK_ARM64
static const tsk_kernels kernels_neon = {4, 32, tsk_rows_neon, tsk_sell_neon};
#endif

const tsk_kernels *tsk_kernels_of(int variant) {
    switch (variant) {
#if TSK_X86
    case TSK_VARIANT_AVX2: return &kernels_avx2;
    case TSK_VARIANT_AVX512: return &kernels_avx512;
#endif
#if TSK_ARM64
    case TSK_VARIANT_NEON: return &kernels_neon;
#endif
    default: return &kernels_scalar;
    }
}

int64_t tsk_panel_width(int variant) { return tsk_kernels_of(variant)->panel; }

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

// MARK: - Products

typedef struct {
    const tsk_kernels *k;
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
    int pack;              // whether packing panels pays (see tsk_spmm)
} spmm_job;

static void rows_of(const spmm_job *j, const float *x, float *y, int64_t batch, int64_t r0, int64_t r1,
                    const float *xp, int64_t panels) {
    if (r0 >= r1 || batch <= 0) return;
    const tsk_csr *w = j->w;
    // Prefetch only when the X rows do not all fit in L1 and L2 latency shows.
    const int pf = w->columns * (batch < j->ldx ? batch : j->ldx) * 4 > TSK_PREFETCH_BYTES;
    j->k->rows[w->index_bytes != 2][pf](w, x, j->ldx, y, j->ldy, batch, j->bias, j->act, r0, r1, xp, panels);
}

static void spmm_chunk(void *ctx, int64_t c) {
    const spmm_job *j = (const spmm_job *)ctx;
    rows_of(j, j->x, j->y, j->batch, j->splits[c], j->splits[c + 1], j->xp, j->panels);
}

// Panel-parallel mode: chunk c < panel_chunks packs panel c of X into the running thread's own
// scratch and sweeps every row over it; the chunks after those split the rows of the columns
// that do not fill a panel (run unpacked).
static void spmm_panel_chunk(void *ctx, int64_t c) {
    const spmm_job *j = (const spmm_job *)ctx;
    const int64_t pw = j->k->panel;
    if (c < j->panel_chunks) {
        const float *xp = j->pack ? tsk_pack_panels(j->x + c * pw, j->ldx, j->w->columns, pw, 1) : NULL;
        // Without scratch the panel's columns run unpacked.
        rows_of(j, j->x + c * pw, j->y + c * pw, pw, 0, j->w->rows, xp, xp ? 1 : 0);
        return;
    }
    const int64_t r = c - j->panel_chunks, j0 = j->panel_chunks * pw;
    rows_of(j, j->x + j0, j->y + j0, j->batch - j0, j->splits[r], j->splits[r + 1], NULL, 0);
}

void tsk_spmm(int variant, int threads, const tsk_csr *w, const float *x, int64_t ldx,
              float *y, int64_t ldy, int64_t batch, const float *bias, int act,
              const int64_t *splits, int64_t chunks) {
    if (threads < 1) threads = 1;
    if (batch <= 0 || w->rows <= 0) return;
    const tsk_kernels *k = tsk_kernels_of(variant);
    const int64_t pw = k->panel;
    int64_t panels = tsk_panel_count(pw, w, batch);
    // An SpMV non-zero costs about as much as 8 multiply-adds of a batched product (0.45–0.5 ns
    // against 0.06–0.09 ns per multiply-add here), and a batch under 8 columns runs one masked
    // vector per non-zero, so a non-zero counts as at least 8 multiply-adds against the threshold.
    const int64_t nnz = w->offsets[w->rows] - w->offsets[0];
    const int64_t work = nnz * (batch < 8 ? 8 : batch);
    const int size = tsk_job_size(work);
    const int wide = w->index_bytes != 2;
    // Packing copies every row of X once per panel; it pays only when the product reads each row
    // often enough. With fewer than TSK_PACK_MIN_USES non-zeros per column of W the kernels read X
    // in place. Zen 4, B = 128, competitors.c, medians of 3 rounds, packed → in place: 300×784 at
    // 95% (15 non-zeros per column), AVX-512 0.0322 → 0.0287–0.0291 ms on 2 threads and 0.060 →
    // 0.055 ms on 1, AVX2 0.0613 → 0.0585–0.0590 ms on 1; at 90% (30 per column) in place was no
    // faster with AVX-512 and 5% slower with AVX2 (0.113 → 0.119 ms), so it keeps packing, as does
    // 4096² (205–410 per column). The choice depends on W alone, never on the threads.
    const int pack = nnz >= TSK_PACK_MIN_USES * w->columns;
    if (batch == 1 && ldx == 1 && k->sell[wide][0] && nnz > 0) {
        const tsk_sell *s = tsk_sell_of(w, k->lanes);
        if (s) {
            tsk_sell_run(s, k->sell[wide][tsk_sell_prefetch(s)], threads, x, y, ldy, bias, act, work);
            return;
        }
    }
    // With at least as many panels as threads, the threads split the batch instead of the rows:
    // each packs its own panels (packing is no longer a serial step before the product) and
    // sweeps all rows over them, one claim per panel. Measured (AVX2, 300×784 at 90%, B = 128,
    // 2 threads): row split with one packing caller 0.33 ms, panel split 0.16 ms (1 thread 0.27 ms).
    // Without packing (X read in place) nothing is serial, and the rows' finer chunks balance
    // better than one panel per thread: Zen 4, AVX-512, 2 threads, competitors.c, 3 alternated
    // runs of 3 rounds each, panels → rows: 300×784 at 95%, B = 128, 0.0297–0.0298 → 0.0275–0.0277
    // ms (the simple AVX2 kernel 0.0287–0.0290); at 99% 0.0110–0.0123 → 0.0075–0.0099 ms;
    // 1024² at 99% 0.0406–0.0471 → 0.0286–0.0288 ms.
    const int useful = tsk_useful_threads(threads, panels > chunks ? panels : chunks, work);
    if (useful >= 2 && panels >= useful && size != TSK_JOB_TINY && pack) {
        const int64_t tail = batch - panels * pw;
        spmm_job job = {k, w, x, ldx, y, ldy, batch, bias, act, splits, NULL, 0, panels, pack};
        tsk_run_parallel(spmm_panel_chunk, &job, panels + (tail > 0 ? chunks : 0), useful, work);
        return;
    }
    // Otherwise the caller packs once and the threads split the rows, reading its panels; an X
    // that is one aligned panel already (a compiled network's slab) is used as is.
    const float *xp = NULL;
    if (panels == 1 && batch == pw && ldx == pw && ((uintptr_t)x & 63) == 0) xp = x;
    else if (panels && pack) xp = tsk_pack_panels(x, ldx, w->columns, pw, panels);
    if (!xp) panels = 0;
    spmm_job job = {k, w, x, ldx, y, ldy, batch, bias, act, splits, xp, panels, 0, pack};
    tsk_run_parallel(spmm_chunk, &job, chunks, tsk_useful_threads(threads, chunks, work), work);
}

void tsk_parallel_for(int threads, int64_t count, int64_t work, void (*fn)(void *ctx, int64_t index), void *ctx) {
    tsk_run_parallel(fn, ctx, count, threads, work);
}

// The C kernels' test harness: every variant this CPU (or emulator) supports against a naive
// double-precision reference, through the public header only. Built and run by
// `scripts/test-kernels` (natively, and for aarch64 under qemu-aarch64); not a SwiftPM target.
//
//   harness [--quick] [--seed N]
//
// Checks `tsk_spmm` over odd shapes, batches 1–1000, row strides of X and Y wider than the batch,
// both index widths, the four activations, bias or none, empty rows, offsets that do not start at
// 0, sparsity 0–100%, 1/2/3/16 threads and several chunkings; that Y's padding columns are never
// written and that every thread count gives the same bits as one thread; one matrix view (one
// batch-1 cache) multiplied by every variant in turn. Then `tsk_bias_act`,
// `tsk_transpose`, `tsk_parallel_for` (every index exactly once, also from two callers at once)
// and `tsk_split_rows`. Exits 1 on any failure and closes on one line:
//   kernels: N cases, V variants (names), F failures
// where a case is one checked call (one variant, one thread count).
#define _GNU_SOURCE
#include "CSparseKernels.h"
#include "internal.h"   // the pool's ladder (tsk_kind_rung)

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int quick;
static long cases, failures;
static int variants[8], nvariants;

#define MAX_REPORTS 25

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stdarg.h>
static void fail(const char *fmt, ...) {
    failures++;
    if (failures > MAX_REPORTS) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    if (failures == MAX_REPORTS) printf("(further failures counted, not printed)\n");
}

static const char *variant_name(int v) {
    static char other[8][16];
    switch (v) {
    case TSK_VARIANT_SCALAR: return "scalar";
    case TSK_VARIANT_AVX2: return "avx2";
    case TSK_VARIANT_AVX512: return "avx512";
    case 3: return "neon";
    default:
        snprintf(other[v & 7], sizeof other[0], "variant%d", v);
        return other[v & 7];
    }
}

static const char *act_name(int act) {
    static const char *names[] = {"identity", "relu", "tanh", "sigmoid"};
    return act >= 0 && act < 4 ? names[act] : "?";
}

// MARK: - Random numbers (splitmix64: the same stream on every machine)

static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }

static int64_t below(uint64_t *s, int64_t n) { return (int64_t)(next_u64(s) % (uint64_t)n); }

static void *xalloc(size_t bytes) {
    // 64-byte aligned (X may then be a panel read in place), exactly `bytes` long (so that an
    // address sanitizer sees reads past the end), never NULL.
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 1) != 0) p = NULL;
    if (!p) {
        fprintf(stderr, "harness: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

// MARK: - Matrices

// A CSR matrix with both index widths (the 16-bit copy only when the columns allow), whose
// entries start at `base` in its arrays (entries before it hold garbage the kernels must not read
// as part of any row).
typedef struct {
    int64_t rows, cols, base, nnz;
    int64_t *off;
    uint16_t *ind16;
    uint32_t *ind32;
    float *val;
} matrix;

static matrix make_matrix(int64_t rows, int64_t cols, double density, int empty_rows, int64_t base, uint64_t *rng) {
    matrix m = {rows, cols, base, 0, NULL, NULL, NULL, NULL};
    m.off = xalloc(sizeof(int64_t) * (size_t)(rows + 1));
    int64_t cap = base + 64;
    m.ind32 = malloc(sizeof(uint32_t) * (size_t)cap);
    m.val = malloc(sizeof(float) * (size_t)cap);
    for (int64_t p = 0; p < base; p++) { m.ind32[p] = (uint32_t)cols + 12345u; m.val[p] = NAN; }
    int64_t n = base;
    for (int64_t i = 0; i < rows; i++) {
        m.off[i] = n;
        // Empty rows: every fifth (when asked), beside whatever the sparsity gives.
        if (empty_rows && i % 5 == 2) continue;
        for (int64_t j = 0; j < cols; j++) {
            if (density < 1.0 && uniform(rng) >= density) continue;
            if (n == cap) {
                cap *= 2;
                m.ind32 = realloc(m.ind32, sizeof(uint32_t) * (size_t)cap);
                m.val = realloc(m.val, sizeof(float) * (size_t)cap);
                if (!m.ind32 || !m.val) { fprintf(stderr, "harness: out of memory\n"); exit(2); }
            }
            m.ind32[n] = (uint32_t)j;
            m.val[n] = (float)(2.0 * uniform(rng) - 1.0);
            n++;
        }
    }
    m.off[rows] = n;
    m.nnz = n - base;
    if (cols <= 65536) {
        m.ind16 = malloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
        for (int64_t p = 0; p < n; p++) m.ind16[p] = (uint16_t)m.ind32[p];
    }
    return m;
}

static void free_matrix(matrix *m) {
    free(m->off);
    free(m->ind16);
    free(m->ind32);
    free(m->val);
}

static tsk_csr csr_view(const matrix *m, int index_bytes) {
    tsk_csr w = {m->rows, m->cols, m->off, index_bytes == 2 ? (const void *)m->ind16 : (const void *)m->ind32,
                 index_bytes, m->val, NULL};
    return w;
}

static double act_ref(double v, int act) {
    switch (act) {
    case TSK_ACT_RELU: return v > 0 ? v : 0;
    case TSK_ACT_TANH: return tanh(v);
    case TSK_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    default: return v;
    }
}

// MARK: - tsk_spmm

typedef struct {
    int64_t rows, cols, batch, ldx, ldy, chunks, row_cost, base;
    double density;
    int act, has_bias, empty_rows, x_offset;
} spmm_case;

static void describe(char *buf, size_t n, const spmm_case *c, int variant, int ib, int threads) {
    snprintf(buf, n,
             "%s %lldx%lld density %.2f%s batch %lld ldx %lld ldy %lld %d-byte indices %s %s bias "
             "threads %d chunks %lld row_cost %lld base %lld x+%d",
             variant_name(variant), (long long)c->rows, (long long)c->cols, c->density, c->empty_rows ? " (empty rows)" : "",
             (long long)c->batch, (long long)c->ldx, (long long)c->ldy, ib, act_name(c->act), c->has_bias ? "with" : "no",
             threads, (long long)c->chunks, (long long)c->row_cost, (long long)c->base, c->x_offset);
}

static const float Y_PAD = -7777.0f;

static void run_spmm_case(const spmm_case *c, uint64_t *rng, const int *threads_list, int nthreads) {
    matrix m = make_matrix(c->rows, c->cols, c->density, c->empty_rows, c->base, rng);
    // X: K × ldx, the padding columns NaN (a kernel that lets them into a result fails).
    float *xbuf = xalloc(sizeof(float) * (size_t)(c->cols * c->ldx + c->x_offset));
    float *x = xbuf + c->x_offset;
    for (int64_t r = 0; r < c->cols; r++)
        for (int64_t j = 0; j < c->ldx; j++) x[r * c->ldx + j] = j < c->batch ? (float)(2.0 * uniform(rng) - 1.0) : NAN;
    float *bias = NULL;
    if (c->has_bias) {
        bias = xalloc(sizeof(float) * (size_t)c->rows);
        for (int64_t i = 0; i < c->rows; i++) bias[i] = (float)(uniform(rng) - 0.5);
    }
    // The reference in double, and each output's scale: the sum of |w·x| (and |b|).
    const size_t outs = (size_t)(c->rows * c->batch);
    double *ref = malloc(sizeof(double) * outs), *scale = malloc(sizeof(double) * outs);
    if (!ref || !scale) { fprintf(stderr, "harness: out of memory\n"); exit(2); }
    for (int64_t i = 0; i < c->rows; i++) {
        double *ri = ref + i * c->batch, *si = scale + i * c->batch;
        const double b = bias ? bias[i] : 0.0;
        for (int64_t j = 0; j < c->batch; j++) { ri[j] = b; si[j] = fabs(b); }
        for (int64_t p = m.off[i]; p < m.off[i + 1]; p++) {
            const double v = m.val[p];
            const float *xr = x + (int64_t)m.ind32[p] * c->ldx;
            for (int64_t j = 0; j < c->batch; j++) { ri[j] += v * xr[j]; si[j] += fabs(v * xr[j]); }
        }
        for (int64_t j = 0; j < c->batch; j++) ri[j] = act_ref(ri[j], c->act);
    }
    const double atol = c->act == TSK_ACT_TANH || c->act == TSK_ACT_SIGMOID ? 1e-6 : 0.0;

    const size_t ybytes = sizeof(float) * (size_t)(c->rows * c->ldy);
    float *y = xalloc(ybytes + 4), *first = xalloc(ybytes + 4);
    int64_t *splits = xalloc(sizeof(int64_t) * (size_t)(c->chunks + 1));
    tsk_split_rows(m.off, c->rows, c->chunks, c->row_cost, splits);
    char what[400];
    for (int vi = 0; vi < nvariants; vi++) {
        const int variant = variants[vi];
        for (int ib = 2; ib <= 4; ib += 2) {
            if (ib == 2 && !m.ind16) continue;
            tsk_csr w = csr_view(&m, ib);
            for (int t = 0; t < nthreads; t++) {
                const int threads = threads_list[t];
                for (size_t k = 0; k < (size_t)(c->rows * c->ldy); k++) y[k] = Y_PAD;
                for (int64_t i = 0; i < c->rows; i++)
                    for (int64_t j = 0; j < c->batch; j++) y[i * c->ldy + j] = NAN;
                tsk_spmm(variant, threads, &w, x, c->ldx, y, c->ldy, c->batch, bias, c->act, splits, c->chunks);
                cases++;
                int64_t bad = 0, pad = 0, bi = -1, bj = -1;
                double worst = 0;
                for (int64_t i = 0; i < c->rows; i++) {
                    for (int64_t j = 0; j < c->batch; j++) {
                        const double got = y[i * c->ldy + j], want = ref[i * c->batch + j];
                        const double err = fabs(got - want), tol = 1e-5 * scale[i * c->batch + j] + atol;
                        if (!(err <= tol)) {
                            if (bad++ == 0 || err > worst) { worst = err; bi = i; bj = j; }
                        }
                    }
                    for (int64_t j = c->batch; j < c->ldy; j++) pad += y[i * c->ldy + j] != Y_PAD;
                }
                if (bad || pad) {
                    describe(what, sizeof what, c, variant, ib, threads);
                    if (bad)
                        fail("spmm %s: %lld outputs off the reference, worst y[%lld,%lld] = %.9g, want %.9g (scale %.3g)",
                             what, (long long)bad, (long long)bi, (long long)bj, (double)y[bi * c->ldy + bj],
                             ref[bi * c->batch + bj], scale[bi * c->batch + bj]);
                    if (pad) fail("spmm %s: %lld padding columns of Y written", what, (long long)pad);
                }
                // Every thread count (and a repeat) gives the bits of the first run.
                if (t == 0) {
                    memcpy(first, y, ybytes);
                } else if (!bad) {
                    int64_t diff = 0;
                    for (int64_t i = 0; i < c->rows; i++)
                        diff += memcmp(y + i * c->ldy, first + i * c->ldy, sizeof(float) * (size_t)c->batch) != 0;
                    if (diff) {
                        describe(what, sizeof what, c, variant, ib, threads);
                        fail("spmm %s: %lld rows differ bitwise from %d thread(s)", what, (long long)diff, threads_list[0]);
                    }
                }
            }
            tsk_csr_release(&w);
        }
    }
    free(splits);
    free(first);
    free(y);
    free(ref);
    free(scale);
    free(bias);
    free(xbuf);
    free_matrix(&m);
}

static void test_spmm(uint64_t *rng) {
    static const int64_t shapes_full[][2] = {
        {1, 1}, {1, 3}, {3, 1}, {3, 17}, {17, 3}, {17, 63}, {63, 17}, {63, 63}, {64, 64}, {100, 300},
        {300, 784}, {1000, 33}, {33, 1000}, {8, 4096}, {3, 65536}, {40, 70000},
    };
    static const int64_t shapes_quick[][2] = {{1, 1}, {3, 17}, {17, 63}, {63, 17}, {300, 784}, {1000, 33}, {5, 70000}};
    static const int64_t batches_full[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 1000};
    static const int64_t batches_quick[] = {1, 7, 8, 9, 16, 17, 64, 65, 128, 1000};
    static const double densities[] = {1.0, 0.5, 0.1, 0.01, 0.0};  // sparsity 0%, 50%, 90%, 99%, 100%
    static const int threads_list[] = {1, 2, 3, 16, 2};
    const int64_t (*shapes)[2] = quick ? shapes_quick : shapes_full;
    const int nshapes = quick ? (int)(sizeof shapes_quick / sizeof *shapes_quick) : (int)(sizeof shapes_full / sizeof *shapes_full);
    const int64_t *batches = quick ? batches_quick : batches_full;
    const int nbatches = quick ? (int)(sizeof batches_quick / sizeof *batches_quick) : (int)(sizeof batches_full / sizeof *batches_full);
    // Products above this many multiply-adds are left out (the reference is naive).
    const double limit = quick ? 1.5e6 : 8e6;
    const long before = cases, failed = failures;
    long k = 0;
    for (int s = 0; s < nshapes; s++) {
        for (int b = 0; b < nbatches; b++) {
            for (int d = 0; d < 5; d++) {
                spmm_case c = {0};
                c.rows = shapes[s][0];
                c.cols = shapes[s][1];
                c.batch = batches[b];
                c.density = densities[d];
                const double madds = (double)c.rows * (double)c.cols * (double)c.batch * (c.density > 0.01 ? c.density : 0.01);
                if (madds > limit) continue;
                // The other parameters rotate through their values from one product to the next.
                k++;
                static const int64_t extra[] = {0, 1, 13};
                c.ldx = c.batch + (c.batch == 1 && k % 2 ? 0 : extra[below(rng, 3)]);
                c.ldy = c.batch + extra[below(rng, 3)];
                c.act = (int)(k % 4);
                c.has_bias = (k / 4) % 2 == 0;
                c.empty_rows = (k / 8) % 3 == 1;
                c.base = (k / 3) % 4 == 3 ? 5 : 0;
                c.x_offset = (k / 5) % 3 == 2;
                switch (below(rng, 4)) {
                case 0: c.chunks = 1; break;
                case 1: c.chunks = 2; break;
                case 2: c.chunks = 1 + below(rng, 32); break;
                default: c.chunks = c.rows + 3; break;  // more chunks than rows: some are empty
                }
                static const int64_t costs[] = {0, 1, 8, 64};
                c.row_cost = costs[below(rng, 4)];
                run_spmm_case(&c, rng, threads_list, quick ? 4 : 5);
            }
        }
    }
    // X that is exactly one aligned panel (read in place) for each variant that packs.
    for (int vi = 0; vi < nvariants; vi++) {
        const int64_t pw = tsk_panel_width(variants[vi]);
        if (pw <= 0) continue;
        for (int act = 0; act < 4; act++) {
            spmm_case c = {0};
            c.rows = 63; c.cols = 300; c.batch = pw; c.ldx = pw; c.ldy = pw + (act & 1);
            c.density = 0.1; c.act = act; c.has_bias = act & 1; c.chunks = 7; c.row_cost = 8;
            run_spmm_case(&c, rng, threads_list, quick ? 4 : 5);
        }
    }
    printf("spmm: %ld cases over %ld products, %ld failures\n", cases - before, k, failures - failed);
}

// One matrix view (so one batch-1 cache in `spmv_cache`) multiplied by every variant in turn,
// forwards then backwards: a copy cached by one variant must serve (or be rebuilt for) the next.
static void test_shared_cache(uint64_t *rng) {
    static const int64_t shapes[][2] = {{1, 1}, {17, 63}, {300, 784}, {1000, 33}};
    const long before = cases, failed = failures;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        matrix m = make_matrix(shapes[s][0], shapes[s][1], 0.1, 1, 0, rng);
        float *x = xalloc(sizeof(float) * (size_t)m.cols), *y = xalloc(sizeof(float) * (size_t)m.rows);
        double *ref = malloc(sizeof(double) * (size_t)m.rows), *scale = malloc(sizeof(double) * (size_t)m.rows);
        if (!ref || !scale) { fprintf(stderr, "harness: out of memory\n"); exit(2); }
        for (int64_t j = 0; j < m.cols; j++) x[j] = (float)(2.0 * uniform(rng) - 1.0);
        for (int64_t i = 0; i < m.rows; i++) {
            ref[i] = scale[i] = 0;
            for (int64_t p = m.off[i]; p < m.off[i + 1]; p++) {
                ref[i] += (double)m.val[p] * x[m.ind32[p]];
                scale[i] += fabs((double)m.val[p] * x[m.ind32[p]]);
            }
        }
        int64_t splits[3];
        tsk_split_rows(m.off, m.rows, 2, 8, splits);
        for (int ib = 2; ib <= 4; ib += 2) {
            tsk_csr w = csr_view(&m, ib);
            for (int pass = 0; pass < 2 * nvariants; pass++) {
                const int variant = variants[pass < nvariants ? pass : 2 * nvariants - 1 - pass];
                for (int threads = 1; threads <= 2; threads++) {
                    for (int64_t i = 0; i < m.rows; i++) y[i] = NAN;
                    tsk_spmm(variant, threads, &w, x, 1, y, 1, 1, NULL, TSK_ACT_IDENTITY, splits, 2);
                    cases++;
                    int64_t bad = 0;
                    for (int64_t i = 0; i < m.rows; i++) bad += !(fabs(y[i] - ref[i]) <= 1e-5 * scale[i]);
                    if (bad)
                        fail("shared batch-1 cache: %s after %d other products, %lldx%lld %d-byte indices, %d thread(s): %lld wrong",
                             variant_name(variant), pass, (long long)m.rows, (long long)m.cols, ib, threads, (long long)bad);
                }
            }
            tsk_csr_release(&w);
            if (w.spmv_cache) fail("tsk_csr_release left spmv_cache set");
        }
        free(ref);
        free(scale);
        free(x);
        free(y);
        free_matrix(&m);
    }
    printf("shared cache: %ld cases, %ld failures\n", cases - before, failures - failed);
}

// MARK: - tsk_bias_act

static void test_bias_act(uint64_t *rng) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 9}, {17, 64, 64}, {63, 65, 80}, {300, 128, 130}, {5, 1000, 1003}};
    const long before = cases, failed = failures;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t rows = shapes[s][0], batch = shapes[s][1], ldy = shapes[s][2];
        float *y = xalloc(sizeof(float) * (size_t)(rows * ldy)), *y0 = xalloc(sizeof(float) * (size_t)(rows * ldy));
        float *bias = xalloc(sizeof(float) * (size_t)rows);
        for (int64_t i = 0; i < rows; i++) bias[i] = (float)(4.0 * uniform(rng) - 2.0);
        for (int64_t k = 0; k < rows * ldy; k++) y0[k] = (k % ldy) < batch ? (float)(8.0 * uniform(rng) - 4.0) : Y_PAD;
        for (int act = 0; act < 4; act++) {
            for (int hb = 0; hb < 2; hb++) {
                memcpy(y, y0, sizeof(float) * (size_t)(rows * ldy));
                tsk_bias_act(y, ldy, rows, batch, hb ? bias : NULL, act);
                cases++;
                int64_t bad = 0, pad = 0;
                for (int64_t i = 0; i < rows; i++) {
                    for (int64_t j = 0; j < ldy; j++) {
                        const float got = y[i * ldy + j], in = y0[i * ldy + j];
                        if (j >= batch) { pad += got != Y_PAD; continue; }
                        const double b = hb ? bias[i] : 0.0, want = act_ref((double)in + b, act);
                        const double tol = 1e-6 * (fabs(in) + fabs(b)) + (act >= TSK_ACT_TANH ? 1e-6 : 0.0);
                        bad += !(fabs(got - want) <= tol);
                    }
                }
                if (bad || pad)
                    fail("bias_act %lldx%lld ldy %lld %s %s bias: %lld wrong, %lld padding written", (long long)rows,
                         (long long)batch, (long long)ldy, act_name(act), hb ? "with" : "no", (long long)bad, (long long)pad);
            }
        }
        free(y);
        free(y0);
        free(bias);
    }
    printf("bias_act: %ld cases, %ld failures\n", cases - before, failures - failed);
}

// MARK: - tsk_transpose

static void test_transpose(uint64_t *rng) {
    static const int64_t shapes[][2] = {{1, 1}, {1, 100}, {100, 1}, {7, 9}, {8, 8}, {16, 24}, {64, 64},
                                        {65, 129}, {300, 784}, {784, 300}, {1000, 33}};
    const long before = cases, failed = failures;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *src = xalloc(sizeof(float) * (size_t)n), *dst = xalloc(sizeof(float) * (size_t)(n + 16));
        for (int64_t k = 0; k < n; k++) src[k] = (float)(uniform(rng) - 0.5);
        for (int64_t k = 0; k < n + 16; k++) dst[k] = Y_PAD;
        tsk_transpose(src, rows, cols, dst);
        cases++;
        int64_t bad = 0, guard = 0;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) bad += memcmp(&dst[j * rows + i], &src[i * cols + j], sizeof(float)) != 0;
        for (int64_t k = n; k < n + 16; k++) guard += dst[k] != Y_PAD;
        if (bad || guard)
            fail("transpose %lldx%lld: %lld wrong, %lld written past the end", (long long)rows, (long long)cols,
                 (long long)bad, (long long)guard);
        free(src);
        free(dst);
    }
    printf("transpose: %ld cases, %ld failures\n", cases - before, failures - failed);
}

// MARK: - tsk_parallel_for

typedef struct {
    _Atomic uint32_t *hits;
    int64_t count;
    _Atomic int64_t out_of_range;
} pf_ctx;

static void pf_fn(void *ctx, int64_t index) {
    pf_ctx *c = ctx;
    if (index < 0 || index >= c->count) {
        atomic_fetch_add(&c->out_of_range, 1);
        return;
    }
    atomic_fetch_add_explicit(&c->hits[index], 1, memory_order_relaxed);
}

// Runs one tsk_parallel_for and checks every index ran exactly once.
static void check_parallel_for(int threads, int64_t count, int64_t work, const char *who) {
    pf_ctx c = {calloc((size_t)(count > 0 ? count : 1), sizeof(uint32_t)), count, 0};
    if (!c.hits) { fprintf(stderr, "harness: out of memory\n"); exit(2); }
    tsk_parallel_for(threads, count, work, pf_fn, &c);
    int64_t wrong = 0, first = -1;
    for (int64_t i = 0; i < count; i++)
        if (atomic_load(&c.hits[i]) != 1) { if (first < 0) first = i; wrong++; }
    if (wrong || atomic_load(&c.out_of_range))
        fail("parallel_for%s threads %d count %lld work %lld: %lld indices not run exactly once (first %lld), %lld out of range",
             who, threads, (long long)count, (long long)work, (long long)wrong, (long long)first,
             (long long)atomic_load(&c.out_of_range));
    free((void *)c.hits);
}

static _Atomic long concurrent_cases;

static void *pf_caller(void *arg) {
    const int threads = (int)(intptr_t)arg;
    static const int64_t counts[] = {1, 3, 64, 1000, 5000};
    for (int round = 0; round < (quick ? 20 : 100); round++) {
        const int64_t count = counts[round % 5], work = (int64_t)1 << (12 + 2 * (round % 6));
        check_parallel_for(threads, count, work, " (two callers)");
        atomic_fetch_add(&concurrent_cases, 1);
    }
    return NULL;
}

static void test_parallel_for(void) {
    static const int64_t counts[] = {0, 1, 2, 3, 7, 64, 1000, 65535, 65536, 100000};
    static const int64_t works[] = {0, 5000, (int64_t)1 << 14, (int64_t)1 << 18, (int64_t)1 << 22, (int64_t)1 << 30};
    static const int threads_list[] = {1, 2, 3, 16};
    const long before = cases, failed = failures;
    for (size_t a = 0; a < sizeof counts / sizeof *counts; a++)
        for (size_t b = 0; b < sizeof works / sizeof *works; b++)
            for (size_t t = 0; t < sizeof threads_list / sizeof *threads_list; t++) {
                check_parallel_for(threads_list[t], counts[a], works[b], "");
                cases++;
            }
    // Two callers at once: one gets the pool, the other runs on its own thread; both run everything.
    pthread_t other[2];
    int started = 0;
    for (int i = 0; i < 2; i++) started += pthread_create(&other[i], NULL, pf_caller, (void *)(intptr_t)(i ? 3 : 2)) == 0;
    if (started != 2) fail("parallel_for: could not start two caller threads");
    for (int i = 0; i < started; i++) pthread_join(other[i], NULL);
    cases += atomic_load(&concurrent_cases);
    printf("parallel_for: %ld cases, %ld failures\n", cases - before, failures - failed);
}

// MARK: - The pool's ladder of thread counts

// The rung a kind's runs choose, against a reference written out case by case.
static void check_rung(const char *what, int64_t runs, const int64_t *time, const uint32_t *n, int rungs, int want) {
    cases++;
    const int got = tsk_kind_rung(runs, time, n, rungs);
    if (got != want) fail("ladder: %s: run %lld of %d rungs chose rung %d, expected %d", what, (long long)runs, rungs, got, want);
}

static void test_ladder(void) {
    const long before = cases, failed = failures;
    // Rungs: 1, 2, 4, … up to the call's thread count, which is the last rung.
    static const int threads_list[] = {1, 2, 3, 4, 5, 8, 9, 16, 17, 63, 64};
    static const int rungs_want[] = {1, 2, 3, 3, 4, 4, 5, 5, 6, 7, 7};
    for (size_t i = 0; i < sizeof threads_list / sizeof *threads_list; i++) {
        const int t = threads_list[i], r = tsk_rungs(t);
        cases++;
        if (r != rungs_want[i] || r > TSK_RUNGS) fail("ladder: %d threads give %d rungs, expected %d", t, r, rungs_want[i]);
        for (int k = 0; k < r; k++) {
            const int rt = tsk_rung_threads(k, t), want = k == r - 1 ? t : 1 << k;
            cases++;
            if (rt != want) fail("ladder: rung %d of %d threads runs %d threads, expected %d", k, t, rt, want);
        }
    }
    // Before every rung has 3 samples, the rungs take turns from rung 0.
    const uint32_t fresh[TSK_RUNGS] = {3, 2, 3, 3};
    const int64_t flat[TSK_RUNGS] = {100, 100, 100, 100};
    for (int64_t runs = 1; runs <= 9; runs++) check_rung("exploring", runs, flat, fresh, 4, (int)((runs - 1) % 4));
    // Then the fastest, which must beat every lower rung by 3%.
    const uint32_t done[TSK_RUNGS] = {3, 3, 3, 3, 3, 3, 3};
    const int64_t ladder[TSK_RUNGS] = {1000, 600, 400, 500};
    check_rung("fastest", 5, ladder, done, 4, 2);
    const int64_t near[TSK_RUNGS] = {1000, 980, 975, 990};   // within 3% of one thread: stay alone
    check_rung("3% rule", 5, near, done, 4, 0);
    const int64_t step[TSK_RUNGS] = {1000, 900, 880, 875};   // 2 threads beat 1; 4 and 8 not 3% better than 2
    check_rung("3% rule above rung 0", 5, step, done, 4, 1);
    const int64_t top[TSK_RUNGS] = {1000, 500, 250, 125};
    check_rung("top rung", 5, top, done, 4, 3);
    // Every TSK_RETIME-th run re-times a neighbour of the best: above and below in turn.
    check_rung("re-time below", TSK_RETIME * 2, ladder, done, 4, 1);
    check_rung("re-time above", TSK_RETIME * 3, ladder, done, 4, 3);
    check_rung("re-time at the bottom", TSK_RETIME, near, done, 4, 1);
    check_rung("re-time at the top", TSK_RETIME, top, done, 4, 2);
    // Two threads: the choice the pool made before the ladder (pair if 3% faster, the other way
    // every TSK_RETIME-th run).
    const int64_t pair_wins[TSK_RUNGS] = {1000, 960}, pair_ties[TSK_RUNGS] = {1000, 980};
    check_rung("two threads, pair wins", 7, pair_wins, done, 2, 1);
    check_rung("two threads, tie", 7, pair_ties, done, 2, 0);
    check_rung("two threads, re-time", TSK_RETIME, pair_wins, done, 2, 0);
    check_rung("one thread", TSK_RETIME, flat, done, 1, 0);
    printf("ladder: %ld cases, %ld failures\n", cases - before, failures - failed);
}

// MARK: - tsk_split_rows

static void test_split_rows(uint64_t *rng) {
    static const int64_t rows_list[] = {1, 2, 3, 17, 100, 1000};
    static const int64_t costs[] = {0, 1, 8, 100};
    const long before = cases, failed = failures;
    for (size_t r = 0; r < sizeof rows_list / sizeof *rows_list; r++) {
        const int64_t rows = rows_list[r];
        for (int pattern = 0; pattern < 4; pattern++) {
            // Row lengths: random, all empty, one heavy row, a non-zero first offset.
            int64_t *off = xalloc(sizeof(int64_t) * (size_t)(rows + 1));
            off[0] = pattern == 3 ? 1000 : 0;
            for (int64_t i = 0; i < rows; i++) {
                int64_t len = pattern == 1 ? 0 : pattern == 2 ? (i == rows / 2 ? 5000 : 1) : below(rng, 50);
                if (pattern != 1 && i % 7 == 3) len = 0;
                off[i + 1] = off[i] + len;
            }
            const int64_t parts_list[] = {1, 2, 3, 7, 16, rows, rows + 3};
            for (size_t p = 0; p < sizeof parts_list / sizeof *parts_list; p++) {
                for (size_t c = 0; c < sizeof costs / sizeof *costs; c++) {
                    const int64_t parts = parts_list[p], rc = costs[c];
                    int64_t *splits = xalloc(sizeof(int64_t) * (size_t)(parts + 2));
                    splits[parts + 1] = -99;
                    tsk_split_rows(off, rows, parts, rc, splits);
                    cases++;
                    // Endpoints, order, and balance: no part costs more than its share plus one row.
                    int ok = splits[0] == 0 && splits[parts] == rows && splits[parts + 1] == -99;
                    int64_t heaviest = 0, total = off[rows] - off[0] + rc * rows;
                    for (int64_t i = 0; i < rows; i++) {
                        const int64_t cost = off[i + 1] - off[i] + rc;
                        if (cost > heaviest) heaviest = cost;
                    }
                    for (int64_t k = 0; ok && k < parts; k++) {
                        if (splits[k] > splits[k + 1]) { ok = 0; break; }
                        const int64_t cost = off[splits[k + 1]] - off[splits[k]] + rc * (splits[k + 1] - splits[k]);
                        if ((double)cost > (double)total / (double)parts + (double)heaviest + 1e-9) ok = 0;
                    }
                    if (!ok)
                        fail("split_rows rows %lld pattern %d parts %lld row_cost %lld: bad boundaries", (long long)rows,
                             pattern, (long long)parts, (long long)rc);
                    free(splits);
                }
            }
            free(off);
        }
    }
    printf("split_rows: %ld cases, %ld failures\n", cases - before, failures - failed);
}

int main(int argc, char **argv) {
    uint64_t seed = 20261205;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--quick] [--seed N]\n", argv[0]);
            return 2;
        }
    }
    for (int v = 0; v < 8; v++)
        if (tsk_variant_supported(v)) variants[nvariants++] = v;
    char names[128] = "";
    for (int i = 0; i < nvariants; i++) {
        if (i) strcat(names, ", ");
        strcat(names, variant_name(variants[i]));
    }
    printf("variants supported here: %s (best: %s)%s\n", names, variant_name(tsk_best_variant()), quick ? "; quick case list" : "");
    if (nvariants == 0 || !tsk_variant_supported(TSK_VARIANT_SCALAR)) fail("the scalar variant must always be supported");
    if (!tsk_variant_supported(tsk_best_variant())) fail("the best variant is not supported");
    for (int v = -1; v < 8; v += 9)
        if (tsk_variant_supported(v)) fail("variant %d reported supported", v);
    uint64_t rng = seed;
    test_spmm(&rng);
    test_shared_cache(&rng);
    test_bias_act(&rng);
    test_transpose(&rng);
    test_parallel_for();
    test_ladder();
    test_split_rows(&rng);
    printf("kernels: %ld cases, %d variant%s (%s), %ld failures\n", cases, nvariants, nvariants == 1 ? "" : "s", names, failures);
    return failures ? 1 : 0;
}

/*
 * competitors.c -- measure existing sparse libraries (Intel MKL inspector-
 * executor, librsb) and Topiary's own C kernels (built with -DWITH_TOPIARY
 * and linked with Sources/CSparseKernels/*.c) against an in-process
 * dense OpenBLAS baseline on the cells of the compressed-inference issue.
 * See run.sh and README.md in this folder.
 *
 * Product: Y (M x B) = W (M x K) * X (K x B), float32.
 *   B = 1   : matrix-vector product.
 *   B > 1   : "row"  layout = X K x B row-major (batch contiguous), Y M x B
 *                              row-major (MKL SPARSE_LAYOUT_ROW_MAJOR);
 *             "col"  layout = X stored B x K (each sample contiguous), Y
 *                              stored B x M (column-major K x B / M x B).
 *
 * W and X come from a counter-based generator (splitmix64 mix) that
 * scipy_bench.py reproduces bit for bit:
 *   key(stream, i)  = mix64(mix64(stream) + i)        (bijective in i)
 *   W: position i = m*K + k is zero iff its key is among the
 *      round(s*M*K) smallest keys of stream sW; value = u(key(sW+1, i)).
 *   X: element (k, b), i = k*B + b, value = u(key(sX, i)).
 *   u(h) = ((h >> 40) + 0.5) * 2^-23 - 1   (exact float in (-1, 1), never 0).
 *
 * MKL is loaded with dlopen(RTLD_LOCAL) so that its cblas_* symbols can
 * never interpose OpenBLAS, which is linked normally.  Build with -DNO_RSB
 * for a binary without librsb (and so without GNU OpenMP), in which mkl_rt
 * uses Intel OpenMP.
 *
 * Timing: per cell, every path (dense first, then MKL, then librsb) is
 * measured back to back, in --rounds rounds (default 3), with a pause of
 * >= 100 ms before each (longer while the previous library's threads still
 * spin or other processes load the machine).  One measurement = warm-up
 * (>= 3 calls and >= 20 ms) + timed calls (>= 11 and >= 0.5 s), median of
 * the per-call CLOCK_MONOTONIC times.  A path reports the lowest of its
 * per-round medians; speedup = best dense / path.  Correctness: max over
 * rounds of max_i |y_i - ref_i| / sum_k |W_ik x_k| against a double
 * reference (must be <= 1e-4).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>      /* OpenBLAS */
#ifndef NO_RSB
#include <rsb.h>        /* librsb (pulls in GNU OpenMP, libgomp) */
#endif
#include <mkl_spblas.h> /* MKL types + prototypes (never linked, dlsym only) */
#include <mkl_service.h>

/* ------------------------------------------------------------------ */
/* clocks                                                              */
/* ------------------------------------------------------------------ */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static double cpu_s(void) { /* all threads of this process */
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static void sleep_ms(double ms) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ms / 1000.0);
    ts.tv_nsec = (long)((ms - 1000.0 * ts.tv_sec) * 1e6);
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Busy CPU seconds of the whole machine so far (all cores, /proc/stat). */
static double machine_busy_s(void) {
    static double tick = 0;
    if (tick == 0) tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 8) return 0;
    /* user nice system idle iowait irq softirq steal: busy = all but idle, iowait */
    return tick * (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

static double g_max_wait_s = 90.0; /* longest wait for a quiet machine per pause */

/* Pause between two paths: at least 100 ms; then keep sleeping in 100 ms
 * slices while (a) this process still burns CPU (worker threads of the
 * previous library spinning: Intel OpenMP's KMP_BLOCKTIME is 200 ms,
 * OpenBLAS threads spin too) or (b) other processes on this shared machine
 * use more than 15% of a core.  Gives up after g_max_wait_s.  Returns ms. */
static double gap(void) {
    double t0 = now_s();
    sleep_ms(100.0);
    int warned = 0;
    for (;;) {
        double c0 = cpu_s(), m0 = machine_busy_s();
        sleep_ms(100.0);
        double own = cpu_s() - c0, foreign = (machine_busy_s() - m0) - own;
        if (own < 0.002 && foreign < 0.015) break;
        if (now_s() - t0 > g_max_wait_s) {
            printf("# gap: machine still busy after %.0f s (own %.3f s, foreign %.3f s per 0.1 s), going on\n",
                   now_s() - t0, own, foreign);
            break;
        }
        if (!warned && now_s() - t0 > 2.0) {
            printf("# gap: waiting for a quiet machine (foreign load %.2f cores)...\n", foreign / 0.1);
            fflush(stdout);
            warned = 1;
        }
    }
    double ms = 1000.0 * (now_s() - t0);
    if (warned) printf("# gap: waited %.1f s\n", ms / 1000.0);
    return ms;
}

/* ------------------------------------------------------------------ */
/* deterministic data                                                  */
/* ------------------------------------------------------------------ */
static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline uint64_t key64(uint64_t stream, uint64_t i) { return mix64(mix64(stream) + i); }
static inline float unif(uint64_t h) {
    /* (2m + 1 - 2^24) / 2^24 for the top 24 bits m: exact in float, odd
     * numerator so never 0 (a kept weight is always a true non-zero) */
    return (float)(((double)(h >> 40) + 0.5) * (1.0 / 8388608.0) - 1.0);
}
static uint64_t stream_w(int M, int K, double s) {
    return ((uint64_t)M * 100003ULL + (uint64_t)K) * 1000ULL + (uint64_t)llround(s * 1000.0);
}
static uint64_t stream_x(int K, int B) { return 0x5800000000ULL + (uint64_t)K * 4096ULL + (uint64_t)B; }

/* k-th smallest (0-based) of a[0..n), destroys order (quickselect) */
static uint64_t kth_smallest(uint64_t *a, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        /* median of three as pivot */
        uint64_t x = a[lo], y = a[mid], z = a[hi], p;
        if (x < y) p = (y < z) ? y : ((x < z) ? z : x);
        else       p = (x < z) ? x : ((y < z) ? z : y);
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) {
                uint64_t t = a[i]; a[i] = a[j]; a[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

typedef struct {
    int M, K;
    double s;
    int nnz;
    float *W;      /* dense, zeros included, row-major M x K */
    int *rowptr;   /* CSR, 0-based, M+1 */
    int *col;
    float *val;
} Weight;

static void *xmalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) { fprintf(stderr, "out of memory\n"); exit(2); }
    return p;
}

static void make_weight(Weight *w, int M, int K, double s) {
    size_t n = (size_t)M * K;
    long long zeros = llround(s * (double)M * (double)K);
    uint64_t sid = stream_w(M, K, s);
    uint64_t *keys = xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) keys[i] = key64(sid, i);
    uint64_t thr = kth_smallest(keys, n, (size_t)zeros - 1); /* zero iff key <= thr */
    free(keys);
    w->M = M; w->K = K; w->s = s;
    w->W = xmalloc(n * sizeof(float));
    w->rowptr = xmalloc((size_t)(M + 1) * sizeof(int));
    w->nnz = (int)(n - (size_t)zeros);
    w->col = xmalloc((size_t)w->nnz * sizeof(int));
    w->val = xmalloc((size_t)w->nnz * sizeof(float));
    int p = 0;
    w->rowptr[0] = 0;
    for (int m = 0; m < M; m++) {
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)m * K + k;
            if (key64(sid, i) <= thr) {
                w->W[i] = 0.0f;
            } else {
                float v = unif(key64(sid + 1, i));
                w->W[i] = v;
                w->col[p] = k;
                w->val[p] = v;
                p++;
            }
        }
        w->rowptr[m + 1] = p;
    }
    if (p != w->nnz) { fprintf(stderr, "nnz mismatch %d vs %d\n", p, w->nnz); exit(2); }
}

static void free_weight(Weight *w) {
    free(w->W); free(w->rowptr); free(w->col); free(w->val);
}

/* ------------------------------------------------------------------ */
/* correctness: naive double-precision reference                       */
/* rel err of y_i = |y_i - ref_i| / sum_k |W_ik| |X_kb|                 */
/* (the natural scale of a dot product's rounding error; never ~0/0)   */
/* ------------------------------------------------------------------ */
typedef struct {
    int B;
    float *X;    /* K x B row-major */
    float *Xbm;  /* B x K (sample contiguous) */
    double *ref; /* M x B row-major */
    double *scl; /* M x B row-major, sum |w||x| */
} Batch;

static void make_batch(Batch *b, const Weight *w, int B) {
    int K = w->K, M = w->M;
    uint64_t sid = stream_x(K, B);
    b->B = B;
    b->X = xmalloc((size_t)K * B * sizeof(float));
    b->Xbm = xmalloc((size_t)K * B * sizeof(float));
    for (int k = 0; k < K; k++)
        for (int j = 0; j < B; j++) {
            float v = unif(key64(sid, (uint64_t)k * B + j));
            b->X[(size_t)k * B + j] = v;
            b->Xbm[(size_t)j * K + k] = v;
        }
    b->ref = xmalloc((size_t)M * B * sizeof(double));
    b->scl = xmalloc((size_t)M * B * sizeof(double));
    for (int m = 0; m < M; m++) {
        double *r = b->ref + (size_t)m * B, *a = b->scl + (size_t)m * B;
        for (int j = 0; j < B; j++) { r[j] = 0.0; a[j] = 0.0; }
        for (int p = w->rowptr[m]; p < w->rowptr[m + 1]; p++) {
            double v = w->val[p];
            const float *x = b->X + (size_t)w->col[p] * B;
            for (int j = 0; j < B; j++) { r[j] += v * x[j]; a[j] += fabs(v * x[j]); }
        }
    }
}
static void free_batch(Batch *b) { free(b->X); free(b->Xbm); free(b->ref); free(b->scl); }

/* colmajor != 0: Y is stored B x M (Y[j*M + m]) */
static double max_rel_err(const Weight *w, const Batch *b, const float *Y, int colmajor) {
    double e = 0.0;
    int M = w->M, B = b->B;
    for (int m = 0; m < M; m++)
        for (int j = 0; j < B; j++) {
            double y = colmajor ? Y[(size_t)j * M + m] : Y[(size_t)m * B + j];
            double d = fabs(y - b->ref[(size_t)m * B + j]);
            double s = b->scl[(size_t)m * B + j];
            double r = s > 0 ? d / s : d;
            if (!(r <= e)) e = r; /* also catches NaN */
        }
    return e;
}

/* ------------------------------------------------------------------ */
/* timing harness                                                      */
/* ------------------------------------------------------------------ */
typedef int (*op_fn)(void *ctx); /* returns 0 on success */

typedef struct {
    double med_ms, min_ms, cpu_util;
    double bg;   /* other processes' CPU during the timed loop, in cores */
    int n;
    int tries;   /* 1 = first measurement was clean */
    int fail;
} Timing;

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define MAX_CALLS 200000
static double g_times[MAX_CALLS];

static Timing time_once(op_fn op, void *ctx) {
    Timing t = {0};
    /* warm-up: >= 3 calls and >= 20 ms */
    double t0 = now_s();
    int n = 0;
    while (n < 3 || now_s() - t0 < 0.020) {
        if (op(ctx)) { t.fail = 1; return t; }
        n++;
    }
    /* timed: >= 11 calls and >= 0.5 s */
    double w0 = now_s(), c0 = cpu_s(), m0 = machine_busy_s();
    n = 0;
    while ((n < 11 || now_s() - w0 < 0.5) && n < MAX_CALLS) {
        double a = now_s();
        int r = op(ctx);
        double z = now_s();
        if (r) { t.fail = 1; return t; }
        g_times[n++] = z - a;
    }
    double wall = now_s() - w0, cpu = cpu_s() - c0, busy = machine_busy_s() - m0;
    qsort(g_times, n, sizeof(double), cmp_dbl);
    t.n = n;
    t.med_ms = 1000.0 * ((n & 1) ? g_times[n / 2] : 0.5 * (g_times[n / 2 - 1] + g_times[n / 2]));
    t.min_ms = 1000.0 * g_times[0];
    t.cpu_util = cpu / wall;
    t.bg = (busy - cpu) / wall;
    if (t.bg < 0) t.bg = 0;
    return t;
}

/* Measure; if other processes used > 0.15 cores meanwhile, wait for a quiet
 * machine and measure again (at most 3 measurements; the cleanest is kept). */
static Timing time_op(op_fn op, void *ctx) {
    Timing best = {0};
    for (int k = 1; k <= 3; k++) {
        if (k > 1) gap();
        Timing t = time_once(op, ctx);
        t.tries = k;
        if (t.fail) return t;
        if (k == 1 || t.bg < best.bg) best = t;
        if (t.bg <= 0.15) break;
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* paths, rounds, output                                               */
/* ------------------------------------------------------------------ */
static FILE *g_csv = NULL;
static int g_rsb_col = 0; /* also time librsb's column-major multi-vector path */
static int g_rounds = 3;  /* every path of a cell is measured in this many rounds */
static const char *g_tag = "default";

typedef struct {
    const Weight *w;
    const Batch *b;
    int threads;
    double dense_ms; /* best dense time of this cell */
} Cell;

enum { K_OPENBLAS, K_MKL, K_RSB, K_TOPIARY, K_SIMPLE };
#define MAX_ROUNDS 9
#define MAX_PATHS 16

typedef struct {
    char lib[16], variant[32], layout[8];
    int kind;
    int dyn;        /* MKL: MKL_DYNAMIC value to set before timing */
    op_fn op;
    void *ctx;
    float *Y;       /* output written by op */
    int colmajor;   /* Y stored B x M */
    int failed;
    char note[320];
    int nr;
    double med[MAX_ROUNDS];
    Timing best;    /* the round with the lowest median */
    double err;     /* worst error over the rounds */
} Path;

static Path g_paths[MAX_PATHS];
static int g_npaths = 0;

static Path *new_path(const char *lib, const char *variant, const char *layout, int kind) {
    if (g_npaths >= MAX_PATHS) { fprintf(stderr, "too many paths\n"); exit(2); }
    Path *p = &g_paths[g_npaths++];
    memset(p, 0, sizeof *p);
    snprintf(p->lib, sizeof p->lib, "%s", lib);
    snprintf(p->variant, sizeof p->variant, "%s", variant);
    snprintf(p->layout, sizeof p->layout, "%s", layout);
    p->kind = kind;
    p->dyn = -1;
    return p;
}

static void report(const Cell *c, const Path *p) {
    char shape[32], name[96], rounds[160] = "";
    snprintf(shape, sizeof shape, "%dx%d", c->w->M, c->w->K);
    snprintf(name, sizeof name, "%.15s:%.31s:%.7s", p->lib, p->variant, p->layout);
    for (int r = 0; r < p->nr; r++) {
        size_t l = strlen(rounds);
        snprintf(rounds + l, sizeof rounds - l, "%s%.4g", r ? "/" : "", p->med[r]);
    }
    const Timing *t = &p->best;
    int fail = p->failed || p->nr == 0;
    double speed = (fail || t->med_ms <= 0) ? 0.0 : c->dense_ms / t->med_ms;
    int ok = !fail && p->err <= 1e-4;
    if (fail)
        printf("%-9s B=%-3d t=%d s=%.2f  %-26s   FAILED  %s\n", shape, c->b->B, c->threads, c->w->s, name, p->note);
    else
        printf("%-9s B=%-3d t=%d s=%.2f  %-26s %9.4f ms  x%-6.2f err %.1e %s cpu %.2f bg %.2f%s rounds %s ms  %s\n",
               shape, c->b->B, c->threads, c->w->s, name, t->med_ms, speed, p->err, ok ? "ok " : "BAD",
               t->cpu_util, t->bg, t->bg > 0.15 ? "(NOISY)" : "", rounds, p->note);
    fflush(stdout);
    if (g_csv) {
        fprintf(g_csv, "%s,%s,%d,%d,%d,%d,%.2f,%s,%s,%s,%.6f,%.6f,%d,%.6f,%.4f,%.3e,%d,%.3f,%.3f,%d,%s,\"%s\"\n",
                g_tag, shape, c->w->M, c->w->K, c->b->B, c->threads, c->w->s, p->lib, p->variant, p->layout,
                fail ? -1.0 : t->med_ms, fail ? -1.0 : t->min_ms, t->n, c->dense_ms, speed, p->err, ok,
                t->cpu_util, t->bg, t->tries, rounds, p->note);
        fflush(g_csv);
    }
}

/* ------------------------------------------------------------------ */
/* dense OpenBLAS                                                      */
/* ------------------------------------------------------------------ */
typedef struct {
    const Weight *w;
    const Batch *b;
    float *Y;
} DenseCtx;

static int op_sgemv(void *p) {
    DenseCtx *c = p;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, c->w->M, c->w->K, 1.0f, c->w->W, c->w->K, c->b->X, 1, 0.0f, c->Y, 1);
    return 0;
}
static int op_sgemm_row(void *p) { /* Y(MxB) = W(MxK) X(KxB), row-major */
    DenseCtx *c = p;
    int M = c->w->M, K = c->w->K, B = c->b->B;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, B, K, 1.0f, c->w->W, K, c->b->X, B, 0.0f, c->Y, B);
    return 0;
}
static int op_sgemm_bm(void *p) { /* Ybm(BxM) = Xbm(BxK) W^T */
    DenseCtx *c = p;
    int M = c->w->M, K = c->w->K, B = c->b->B;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, M, K, 1.0f, c->b->Xbm, K, c->w->W, K, 0.0f, c->Y, M);
    return 0;
}

static DenseCtx g_dense_ctx[2];

static void setup_dense(Cell *c) {
    const Weight *w = c->w;
    const Batch *b = c->b;
    size_t ny = (size_t)w->M * b->B;
    if (b->B == 1) {
        Path *p = new_path("openblas", "sgemv", "vec", K_OPENBLAS);
        g_dense_ctx[0] = (DenseCtx){w, b, xmalloc(ny * sizeof(float))};
        p->op = op_sgemv; p->ctx = &g_dense_ctx[0]; p->Y = g_dense_ctx[0].Y;
    } else {
        Path *p = new_path("openblas", "sgemm", "row", K_OPENBLAS);
        g_dense_ctx[0] = (DenseCtx){w, b, xmalloc(ny * sizeof(float))};
        p->op = op_sgemm_row; p->ctx = &g_dense_ctx[0]; p->Y = g_dense_ctx[0].Y;
        snprintf(p->note, sizeof p->note, "W*X");
        p = new_path("openblas", "sgemm", "col", K_OPENBLAS);
        g_dense_ctx[1] = (DenseCtx){w, b, xmalloc(ny * sizeof(float))};
        p->op = op_sgemm_bm; p->ctx = &g_dense_ctx[1]; p->Y = g_dense_ctx[1].Y; p->colmajor = 1;
        snprintf(p->note, sizeof p->note, "Xbm*W^T");
    }
}

/* ------------------------------------------------------------------ */
/* MKL via dlopen                                                      */
/* ------------------------------------------------------------------ */
static struct {
    void *h;
    typeof(mkl_sparse_s_create_csr) *create_csr;
    typeof(mkl_sparse_set_mv_hint) *mv_hint;
    typeof(mkl_sparse_set_mm_hint) *mm_hint;
    typeof(mkl_sparse_set_memory_hint) *mem_hint;
    typeof(mkl_sparse_optimize) *optimize;
    typeof(mkl_sparse_s_mv) *mv;
    typeof(mkl_sparse_s_mm) *mm;
    typeof(mkl_sparse_destroy) *destroy;
    typeof(MKL_Set_Num_Threads) *set_threads;
    typeof(MKL_Get_Max_Threads) *get_threads;
    typeof(MKL_Set_Dynamic) *set_dynamic;
    typeof(MKL_Get_Dynamic) *get_dynamic;
    typeof(MKL_Get_Version_String) *version;
    typeof(MKL_CBWR_Get_Auto_Branch) *cbwr_branch;
} mkl;

/* layer: NULL/"auto" = let mkl_rt choose (it picks GNU OpenMP when libgomp is
 * already in the process, as here through librsb, even if
 * MKL_THREADING_LAYER=INTEL is set, and Intel OpenMP otherwise);
 * "intel", "gnu", "sequential" force it.  Forcing "intel" while libgomp is
 * loaded gives WRONG results with 2 threads (mixed OpenMP runtimes): use the
 * -DNO_RSB build (no libgomp) to measure MKL on Intel OpenMP. */
static int load_mkl(const char *path, const char *layer) {
    mkl.h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!mkl.h) { printf("# MKL: dlopen failed: %s\n", dlerror()); return -1; }
    if (layer && strcmp(layer, "auto")) {
        int code = !strcmp(layer, "intel") ? MKL_THREADING_INTEL
                 : !strcmp(layer, "gnu") ? MKL_THREADING_GNU
                 : !strcmp(layer, "sequential") ? MKL_THREADING_SEQUENTIAL : -1;
        typeof(MKL_Set_Threading_Layer) *set_layer = NULL;
        *(void **)(&set_layer) = dlsym(mkl.h, "MKL_Set_Threading_Layer");
        if (code < 0 || !set_layer) { printf("# MKL: cannot set threading layer %s\n", layer); return -1; }
        int r = set_layer(code); /* must precede every other MKL call */
        printf("# MKL: MKL_Set_Threading_Layer(%s) -> %d\n", layer, r);
    }
#define SYM(field, name)                                                              \
    do {                                                                              \
        *(void **)(&mkl.field) = dlsym(mkl.h, name);                                  \
        if (!mkl.field) { printf("# MKL: missing symbol %s\n", name); return -1; }    \
    } while (0)
    SYM(create_csr, "mkl_sparse_s_create_csr");
    SYM(mv_hint, "mkl_sparse_set_mv_hint");
    SYM(mm_hint, "mkl_sparse_set_mm_hint");
    SYM(mem_hint, "mkl_sparse_set_memory_hint");
    SYM(optimize, "mkl_sparse_optimize");
    SYM(mv, "mkl_sparse_s_mv");
    SYM(mm, "mkl_sparse_s_mm");
    SYM(destroy, "mkl_sparse_destroy");
    SYM(set_threads, "MKL_Set_Num_Threads");
    SYM(get_threads, "MKL_Get_Max_Threads");
    SYM(set_dynamic, "MKL_Set_Dynamic");
    SYM(get_dynamic, "MKL_Get_Dynamic");
    SYM(version, "MKL_Get_Version_String");
    SYM(cbwr_branch, "MKL_CBWR_Get_Auto_Branch");
#undef SYM
    char buf[256];
    mkl.version(buf, sizeof buf);
    printf("# MKL: %s\n", buf);
    printf("# MKL: max_threads=%d dynamic=%d cbwr_auto_branch=%d MKL_ENABLE_INSTRUCTIONS=%s MKL_THREADING_LAYER=%s\n",
           mkl.get_threads(), mkl.get_dynamic(), mkl.cbwr_branch(),
           getenv("MKL_ENABLE_INSTRUCTIONS") ? getenv("MKL_ENABLE_INSTRUCTIONS") : "(unset)",
           getenv("MKL_THREADING_LAYER") ? getenv("MKL_THREADING_LAYER") : "(unset)");
    return 0;
}

/* which MKL / OpenMP shared objects are mapped (shows the CPU dispatch) */
static void print_mkl_libs(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[1024], seen[4096] = "";
    while (fgets(line, sizeof line, f)) {
        char *p = strrchr(line, '/');
        if (!p) continue;
        p++;
        p[strcspn(p, "\n")] = 0;
        if ((strstr(p, "mkl") || strstr(p, "iomp") || strstr(p, "gomp") || strstr(p, "tbb")) && !strstr(seen, p)) {
            if (strlen(seen) + strlen(p) + 2 < sizeof seen) { strcat(seen, p); strcat(seen, " "); }
        }
    }
    fclose(f);
    printf("# mapped MKL/OpenMP libs: %s\n", seen);
}

static const char *sp_status(sparse_status_t s) {
    switch (s) {
    case SPARSE_STATUS_SUCCESS: return "ok";
    case SPARSE_STATUS_NOT_INITIALIZED: return "NOT_INITIALIZED";
    case SPARSE_STATUS_ALLOC_FAILED: return "ALLOC_FAILED";
    case SPARSE_STATUS_INVALID_VALUE: return "INVALID_VALUE";
    case SPARSE_STATUS_EXECUTION_FAILED: return "EXECUTION_FAILED";
    case SPARSE_STATUS_INTERNAL_ERROR: return "INTERNAL_ERROR";
    case SPARSE_STATUS_NOT_SUPPORTED: return "NOT_SUPPORTED";
    }
    return "?";
}

typedef struct {
    sparse_matrix_t A;
    struct matrix_descr d;
    const float *X;
    float *Y;
    int B, ldx, ldy;
    sparse_layout_t layout;
    sparse_status_t last;
} MklCtx;

static int op_mkl_mv(void *p) {
    MklCtx *c = p;
    c->last = mkl.mv(SPARSE_OPERATION_NON_TRANSPOSE, 1.0f, c->A, c->d, c->X, 0.0f, c->Y);
    return c->last != SPARSE_STATUS_SUCCESS;
}
static int op_mkl_mm(void *p) {
    MklCtx *c = p;
    c->last = mkl.mm(SPARSE_OPERATION_NON_TRANSPOSE, 1.0f, c->A, c->d, c->layout, c->X, c->B, c->ldx, 0.0f, c->Y,
                     c->ldy);
    return c->last != SPARSE_STATUS_SUCCESS;
}

static int g_mkl_libs_printed = 0;
static MklCtx g_mkl_ctx[2];
static int g_nmkl = 0;

/* one MKL handle per layout (hints are layout specific); with >1 thread two
 * paths per handle: MKL_DYNAMIC left at its default (true) and false */
static void setup_mkl_one(Cell *c, const char *layout) {
    const Weight *w = c->w;
    const Batch *b = c->b;
    Weight *wm = (Weight *)w; /* MKL wants non-const pointers; it does not write them */
    mkl.set_threads(c->threads);
    mkl.set_dynamic(1);
    MklCtx *ctx = &g_mkl_ctx[g_nmkl++];
    memset(ctx, 0, sizeof *ctx);
    ctx->d.type = SPARSE_MATRIX_TYPE_GENERAL;
    ctx->d.mode = SPARSE_FILL_MODE_FULL;
    ctx->d.diag = SPARSE_DIAG_NON_UNIT;
    ctx->B = b->B;
    char note[256];
    sparse_status_t st = mkl.create_csr(&ctx->A, SPARSE_INDEX_BASE_ZERO, w->M, w->K, wm->rowptr, wm->rowptr + 1,
                                        wm->col, wm->val);
    if (st != SPARSE_STATUS_SUCCESS) {
        Path *p = new_path("mkl", "ie", layout, K_MKL);
        p->failed = 1;
        snprintf(p->note, sizeof p->note, "create_csr: %s", sp_status(st));
        ctx->A = NULL;
        return;
    }
    int colmajor = 0;
    sparse_status_t sh;
    if (!strcmp(layout, "vec")) {
        sh = mkl.mv_hint(ctx->A, SPARSE_OPERATION_NON_TRANSPOSE, ctx->d, 1000000);
        ctx->X = b->X;
    } else {
        colmajor = !strcmp(layout, "col");
        ctx->layout = colmajor ? SPARSE_LAYOUT_COLUMN_MAJOR : SPARSE_LAYOUT_ROW_MAJOR;
        ctx->X = colmajor ? b->Xbm : b->X;
        ctx->ldx = colmajor ? w->K : b->B;
        ctx->ldy = colmajor ? w->M : b->B;
        sh = mkl.mm_hint(ctx->A, SPARSE_OPERATION_NON_TRANSPOSE, ctx->d, ctx->layout, b->B, 1000000);
    }
    sparse_status_t smem = mkl.mem_hint(ctx->A, SPARSE_MEMORY_AGGRESSIVE);
    double t0 = now_s();
    sparse_status_t sopt = mkl.optimize(ctx->A);
    double topt = now_s() - t0;
    ctx->Y = xmalloc((size_t)w->M * b->B * sizeof(float));
    snprintf(note, sizeof note, "hint=%s mem_hint=%s optimize=%s(%.0fms)", sp_status(sh), sp_status(smem),
             sp_status(sopt), 1000 * topt);
    int ndyn = c->threads > 1 ? 2 : 1; /* MKL_DYNAMIC only matters with >1 thread */
    for (int d = 0; d < ndyn; d++) {
        Path *p = new_path("mkl", d ? "ie+nodyn" : "ie", layout, K_MKL);
        p->dyn = d ? 0 : 1;
        p->op = strcmp(layout, "vec") ? op_mkl_mm : op_mkl_mv;
        p->ctx = ctx;
        p->Y = ctx->Y;
        p->colmajor = colmajor;
        snprintf(p->note, sizeof p->note, "%s", note);
    }
}

static void setup_mkl(Cell *c) {
    g_nmkl = 0;
    if (c->b->B == 1) setup_mkl_one(c, "vec");
    else { setup_mkl_one(c, "row"); setup_mkl_one(c, "col"); }
}

static void teardown_mkl(void) {
    for (int i = 0; i < g_nmkl; i++) {
        if (g_mkl_ctx[i].A) mkl.destroy(g_mkl_ctx[i].A);
        free(g_mkl_ctx[i].Y);
    }
    g_nmkl = 0;
}

#ifndef NO_RSB
/* ------------------------------------------------------------------ */
/* librsb                                                              */
/* ------------------------------------------------------------------ */
typedef struct {
    struct rsb_mtx_t *A;
    const float *X;
    float *Y;
    int B, ldb, ldc;
    rsb_flags_t order;
    rsb_err_t last;
} RsbCtx;

static const float g_one = 1.0f, g_zero = 0.0f;

static int op_rsb_mv(void *p) {
    RsbCtx *c = p;
    c->last = rsb_spmv(RSB_TRANSPOSITION_N, &g_one, c->A, c->X, 1, &g_zero, c->Y, 1);
    return c->last != RSB_ERR_NO_ERROR;
}
static int op_rsb_mm(void *p) {
    RsbCtx *c = p;
    c->last = rsb_spmm(RSB_TRANSPOSITION_N, &g_one, c->A, c->B, c->order, c->X, c->ldb, &g_zero, c->Y, c->ldc);
    return c->last != RSB_ERR_NO_ERROR;
}

static void rsb_errstr(rsb_err_t e, char *buf, size_t n) {
    if (rsb_strerror_r(e, buf, n) != RSB_ERR_NO_ERROR) snprintf(buf, n, "rsb error 0x%x", (unsigned)e);
}

static void rsb_set_threads(int n) {
    rsb_int_t tn = n;
    rsb_err_t e = rsb_lib_set_opt(RSB_IO_WANT_EXECUTING_THREADS, &tn);
    if (e != RSB_ERR_NO_ERROR) {
        char buf[128];
        rsb_errstr(e, buf, sizeof buf);
        printf("# rsb: set threads failed: %s\n", buf);
    }
}
static int rsb_get_threads(void) {
    rsb_int_t tn = -1;
    rsb_lib_get_opt(RSB_IO_WANT_EXECUTING_THREADS, &tn);
    return tn;
}

static struct rsb_mtx_t *g_rsb_A = NULL, *g_rsb_T[2] = {NULL, NULL};
static RsbCtx g_rsb_ctx[4];
static float *g_rsb_Y[4];
static int g_nrsb = 0;

static void setup_rsb(Cell *c) {
    const Weight *w = c->w;
    const Batch *b = c->b;
    char buf[128];
    g_nrsb = 0;
    rsb_set_threads(c->threads); /* the recursive partitioning depends on the thread count */
    rsb_err_t err = RSB_ERR_NO_ERROR;
    double t0 = now_s();
    g_rsb_A = rsb_mtx_alloc_from_csr_const(w->val, w->rowptr, w->col, w->nnz, RSB_NUMERICAL_TYPE_FLOAT, w->M, w->K,
                                           RSB_DEFAULT_ROW_BLOCKING, RSB_DEFAULT_COL_BLOCKING,
                                           RSB_FLAG_DEFAULT_RSB_MATRIX_FLAGS, &err);
    double tbuild = now_s() - t0;
    if (!g_rsb_A || err != RSB_ERR_NO_ERROR) {
        rsb_errstr(err, buf, sizeof buf);
        Path *p = new_path("rsb", "plain", b->B == 1 ? "vec" : "row", K_RSB);
        p->failed = 1;
        snprintf(p->note, sizeof p->note, "alloc_from_csr: %s", buf);
        g_rsb_A = NULL;
        return;
    }
    rsb_blk_idx_t leaves = 0;
    rsb_mtx_get_info(g_rsb_A, RSB_MIF_LEAVES_COUNT__TO__RSB_BLK_INDEX_T, &leaves);
    /* librsb's column-major multi-vector path is 5-10x slower than its row-major
     * one here (tried; see README.md), so it is off unless --rsb-col 1 is given. */
    const char *layouts[2] = {b->B == 1 ? "vec" : "row", "col"};
    int nl = b->B == 1 ? 1 : (g_rsb_col ? 2 : 1);
    for (int li = 0; li < nl; li++) {
        int colmajor = !strcmp(layouts[li], "col");
        for (int tuned = 0; tuned < 2; tuned++) {
            int k = g_nrsb++;
            RsbCtx *ctx = &g_rsb_ctx[k];
            memset(ctx, 0, sizeof *ctx);
            g_rsb_Y[k] = xmalloc((size_t)w->M * b->B * sizeof(float));
            memset(g_rsb_Y[k], 0, (size_t)w->M * b->B * sizeof(float));
            ctx->B = b->B;
            ctx->Y = g_rsb_Y[k];
            ctx->order = colmajor ? RSB_FLAG_WANT_COLUMN_MAJOR_ORDER : RSB_FLAG_WANT_ROW_MAJOR_ORDER;
            ctx->X = colmajor ? b->Xbm : b->X;
            ctx->ldb = colmajor ? w->K : b->B;
            ctx->ldc = colmajor ? w->M : b->B;
            ctx->A = g_rsb_A;
            Path *p = new_path("rsb", tuned ? "tuned" : "plain", layouts[li], K_RSB);
            p->op = b->B == 1 ? op_rsb_mv : op_rsb_mm;
            p->ctx = ctx;
            p->Y = ctx->Y;
            p->colmajor = colmajor;
            if (!tuned) {
                snprintf(p->note, sizeof p->note, "build=%.0fms leaves=%d", 1000 * tbuild, (int)leaves);
                continue;
            }
            /* autotuned clone: matrix structure only, thread count kept fixed
             * (tnp = NULL); nrhs = 1 wants COLUMN_MAJOR with unit stride */
            struct rsb_mtx_t *T = NULL;
            rsb_real_t sf = 0;
            t0 = now_s();
            rsb_err_t te = rsb_tune_spmm(&T, &sf, NULL, 0, 0.0, RSB_TRANSPOSITION_N, &g_one, g_rsb_A, b->B,
                                         b->B == 1 ? RSB_FLAG_WANT_COLUMN_MAJOR_ORDER : ctx->order, ctx->X,
                                         b->B == 1 ? 0 : ctx->ldb, &g_zero, ctx->Y, b->B == 1 ? 0 : ctx->ldc);
            double ttune = now_s() - t0;
            rsb_set_threads(c->threads); /* the tuner may have touched the library's thread count */
            if (te != RSB_ERR_NO_ERROR) {
                rsb_errstr(te, buf, sizeof buf);
                p->failed = 1;
                snprintf(p->note, sizeof p->note, "rsb_tune_spmm failed: err=0x%x \"%s\"", (unsigned)te, buf);
                continue;
            }
            int kept = T == NULL || T == g_rsb_A;
            if (!kept) g_rsb_T[li] = T;
            ctx->A = kept ? g_rsb_A : T;
            rsb_blk_idx_t tl = 0;
            rsb_mtx_get_info(ctx->A, RSB_MIF_LEAVES_COUNT__TO__RSB_BLK_INDEX_T, &tl);
            snprintf(p->note, sizeof p->note, "tune=%.0fms declared_speedup=%.2f %s leaves=%d", 1000 * ttune, sf,
                     kept ? "(no better instance: original kept)" : "(new instance)", (int)tl);
        }
    }
}

static void teardown_rsb(void) {
    for (int i = 0; i < 2; i++)
        if (g_rsb_T[i]) { rsb_mtx_free(g_rsb_T[i]); g_rsb_T[i] = NULL; }
    if (g_rsb_A) { rsb_mtx_free(g_rsb_A); g_rsb_A = NULL; }
    for (int i = 0; i < g_nrsb; i++) free(g_rsb_Y[i]);
    g_nrsb = 0;
}

#endif /* NO_RSB */

/* ------------------------------------------------------------------ */
/* one cell: set up every path, then g_rounds rounds of (dense, MKL,    */
/* librsb) back to back with a pause between paths; each path reports  */
/* the lowest of its per-round medians (host noise on this VM comes in  */
/* slow phases lasting seconds; see README.md)                        */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Topiary's own C kernels (Sources/CSparseKernels/*.c, compiled */
/* into this program with -DWITH_TOPIARY), on the same W and X          */
/* ------------------------------------------------------------------ */
static int g_want_topiary = 0;
#ifdef WITH_TOPIARY
#include "CSparseKernels.h"
typedef struct {
    tsk_csr csr;
    int64_t *off;
    uint16_t *ind16;
    uint32_t *ind32;
    int64_t splits[9];
    const Batch *b;
    float *Y;
    int threads, variant;
} TopCtx;
static TopCtx g_top;
static int op_topiary(void *p) {
    TopCtx *t = p;
    tsk_spmm(t->variant, t->threads, &t->csr, t->b->X, t->b->B, t->Y, t->b->B, t->b->B, NULL, TSK_ACT_IDENTITY,
             t->splits, 8);
    return 0;
}
static void setup_topiary(Cell *c) {
    const Weight *w = c->w;
    memset(&g_top, 0, sizeof g_top);
    g_top.off = xmalloc((size_t)(w->M + 1) * sizeof(int64_t));
    for (int m = 0; m <= w->M; m++) g_top.off[m] = w->rowptr[m];
    const int wide = w->K > 65536;
    if (wide) {
        g_top.ind32 = xmalloc((size_t)w->nnz * 4 + 64);
        for (int i = 0; i < w->nnz; i++) g_top.ind32[i] = (uint32_t)w->col[i];
    } else {
        g_top.ind16 = xmalloc((size_t)w->nnz * 2 + 64);
        for (int i = 0; i < w->nnz; i++) g_top.ind16[i] = (uint16_t)w->col[i];
    }
    g_top.csr = (tsk_csr){w->M, w->K, g_top.off, wide ? (const void *)g_top.ind32 : (const void *)g_top.ind16,
                          wide ? 4 : 2, w->val, NULL};
    tsk_split_rows(g_top.off, w->M, 8, 2, g_top.splits);
    g_top.b = c->b;
    g_top.Y = xmalloc((size_t)w->M * c->b->B * sizeof(float));
    g_top.threads = c->threads;
    g_top.variant = tsk_best_variant();
    Path *p = new_path("topiary", g_top.variant == TSK_VARIANT_AVX2 ? "avx2" : "best", c->b->B == 1 ? "vec" : "row", K_TOPIARY);
    p->op = op_topiary; p->ctx = &g_top; p->Y = g_top.Y;
}
static void teardown_topiary(void) {
    tsk_csr_release(&g_top.csr);
    free(g_top.off); free(g_top.ind16); free(g_top.ind32); free(g_top.Y);
}
#endif

/* ------------------------------------------------------------------ */
/* A simple hand-written CSR kernel vectorised over the batch: the AVX2 */
/* form of the issue's "simple AVX-512 kernel" (this CPU has no         */
/* AVX-512). Per row and per 64 columns of the batch: 8 accumulators,   */
/* one broadcast weight and 8 FMAs per non-zero, X read in place (K x B */
/* row-major); narrower tails of the batch 8 columns at a time (B a     */
/* multiple of 8 here). Two threads: the rows split in two by non-zero  */
/* count, the second half on a helper thread that spins on a job        */
/* counter for up to 2 ms after each job and then sleeps (so it never   */
/* spins during the other paths, which come after a >= 100 ms gap).     */
/* ------------------------------------------------------------------ */
static int g_want_simple = 0;
#include <immintrin.h>
typedef struct {
    const Weight *w;
    const Batch *b;
    float *Y;
    int threads, split;  /* rows [0, split) on the caller, [split, M) on the helper */
    pthread_t helper;
    int helper_started;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    atomic_int job, done, quit;
} SimpleCtx;
static SimpleCtx g_simple;

__attribute__((target("avx2,fma"))) static void simple_rows(const Weight *w, const Batch *b, float *Y, int r0, int r1) {
    const int B = b->B;
    for (int i = r0; i < r1; i++) {
        const int s = w->rowptr[i], e = w->rowptr[i + 1];
        int j = 0;
        for (; j + 64 <= B; j += 64) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int p = s; p < e; p++) {
                const __m256 v = _mm256_broadcast_ss(&w->val[p]);
                const float *x = b->X + (size_t)w->col[p] * B + j;
                a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8), a1);
                a2 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 16), a2);
                a3 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 24), a3);
                a4 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 32), a4);
                a5 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 40), a5);
                a6 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 48), a6);
                a7 = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 56), a7);
            }
            float *y = Y + (size_t)i * B + j;
            _mm256_storeu_ps(y, a0); _mm256_storeu_ps(y + 8, a1); _mm256_storeu_ps(y + 16, a2);
            _mm256_storeu_ps(y + 24, a3); _mm256_storeu_ps(y + 32, a4); _mm256_storeu_ps(y + 40, a5);
            _mm256_storeu_ps(y + 48, a6); _mm256_storeu_ps(y + 56, a7);
        }
        for (; j + 8 <= B; j += 8) {
            __m256 a = _mm256_setzero_ps();
            for (int p = s; p < e; p++)
                a = _mm256_fmadd_ps(_mm256_broadcast_ss(&w->val[p]), _mm256_loadu_ps(b->X + (size_t)w->col[p] * B + j), a);
            _mm256_storeu_ps(Y + (size_t)i * B + j, a);
        }
    }
}

static double simple_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *simple_helper(void *arg) {
    SimpleCtx *c = arg;
    int seen = 0;
    for (;;) {
        const double start = simple_now();
        int job;
        while ((job = atomic_load(&c->job)) == seen && !atomic_load(&c->quit)) {
            if (simple_now() - start > 2e-3) {
                pthread_mutex_lock(&c->lock);
                while (atomic_load(&c->job) == seen && !atomic_load(&c->quit)) pthread_cond_wait(&c->cv, &c->lock);
                pthread_mutex_unlock(&c->lock);
            }
        }
        if (atomic_load(&c->quit)) return NULL;
        seen = job;
        simple_rows(c->w, c->b, c->Y, c->split, c->w->M);
        atomic_store(&c->done, job);
    }
}

static int op_simple(void *p) {
    SimpleCtx *c = p;
    if (c->threads < 2) {
        simple_rows(c->w, c->b, c->Y, 0, c->w->M);
        return 0;
    }
    const int job = atomic_load(&c->job) + 1;
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->job, job);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
    simple_rows(c->w, c->b, c->Y, 0, c->split);
    while (atomic_load(&c->done) != job) {}
    return 0;
}

static void setup_simple(Cell *c) {
    memset(&g_simple, 0, sizeof g_simple);
    g_simple.w = c->w; g_simple.b = c->b; g_simple.threads = c->threads;
    g_simple.Y = xmalloc((size_t)c->w->M * c->b->B * sizeof(float));
    /* Split the rows where half the non-zeros are done. */
    const int half = c->w->nnz / 2;
    int split = 0;
    while (split < c->w->M && c->w->rowptr[split] < half) split++;
    g_simple.split = split;
    pthread_mutex_init(&g_simple.lock, NULL);
    pthread_cond_init(&g_simple.cv, NULL);
    if (c->threads >= 2 && pthread_create(&g_simple.helper, NULL, simple_helper, &g_simple) == 0) g_simple.helper_started = 1;
    else g_simple.threads = 1;
    Path *p = new_path("simple", "avx2", "row", K_SIMPLE);
    p->op = op_simple; p->ctx = &g_simple; p->Y = g_simple.Y;
}

static void teardown_simple(void) {
    if (g_simple.helper_started) {
        pthread_mutex_lock(&g_simple.lock);
        atomic_store(&g_simple.quit, 1);
        pthread_cond_signal(&g_simple.cv);
        pthread_mutex_unlock(&g_simple.lock);
        pthread_join(g_simple.helper, NULL);
    }
    pthread_mutex_destroy(&g_simple.lock);
    pthread_cond_destroy(&g_simple.cv);
    free(g_simple.Y);
}

static int g_have_mkl = 0, g_want_dense = 1, g_want_rsb = 1;

static void before_path(const Cell *c, const Path *p) {
    switch (p->kind) {
    case K_OPENBLAS: openblas_set_num_threads(c->threads); break;
    case K_MKL: mkl.set_threads(c->threads); mkl.set_dynamic(p->dyn); break;
#ifndef NO_RSB
    case K_RSB: rsb_set_threads(c->threads); break;
#endif
    }
}

static void run_cell(Cell *c) {
    g_npaths = 0;
    if (g_want_dense) setup_dense(c);
    if (g_have_mkl) setup_mkl(c);
#ifndef NO_RSB
    if (g_want_rsb) setup_rsb(c);
#endif
#ifdef WITH_TOPIARY
    if (g_want_topiary) setup_topiary(c);
#endif
    if (g_want_simple && c->b->B % 8 == 0) setup_simple(c);
    size_t ny = (size_t)c->w->M * c->b->B;
    for (int r = 0; r < g_rounds; r++) {
        for (int i = 0; i < g_npaths; i++) {
            Path *p = &g_paths[i];
            if (p->failed) continue;
            gap();
            before_path(c, p);
            memset(p->Y, 0, ny * sizeof(float));
            Timing t = time_op(p->op, p->ctx);
            if (t.fail) {
                p->failed = 1;
                size_t l = strlen(p->note);
                if (p->kind == K_MKL)
                    snprintf(p->note + l, sizeof p->note - l, " call failed: %s", sp_status(((MklCtx *)p->ctx)->last));
                else
                    snprintf(p->note + l, sizeof p->note - l, " call failed");
                continue;
            }
            double e = max_rel_err(c->w, c->b, p->Y, p->colmajor);
            if (!(e <= p->err)) p->err = e;
            p->med[p->nr++] = t.med_ms;
            if (p->nr == 1 || t.med_ms < p->best.med_ms) p->best = t;
            if (p->kind == K_MKL && !g_mkl_libs_printed) { print_mkl_libs(); g_mkl_libs_printed = 1; }
        }
    }
    if (g_have_mkl) {
        char extra[96];
        snprintf(extra, sizeof extra, " max_threads=%d", mkl.get_threads());
        for (int i = 0; i < g_npaths; i++)
            if (g_paths[i].kind == K_MKL) {
                size_t l = strlen(g_paths[i].note);
                snprintf(g_paths[i].note + l, sizeof g_paths[i].note - l, "%s dynamic=%d", extra, g_paths[i].dyn);
            }
    }
#ifndef NO_RSB
    if (g_want_rsb) {
        for (int i = 0; i < g_npaths; i++)
            if (g_paths[i].kind == K_RSB) {
                size_t l = strlen(g_paths[i].note);
                snprintf(g_paths[i].note + l, sizeof g_paths[i].note - l, " threads=%d", rsb_get_threads());
            }
    }
#endif
    c->dense_ms = 0;
    for (int i = 0; i < g_npaths; i++) {
        Path *p = &g_paths[i];
        if (p->kind == K_OPENBLAS && !p->failed && p->nr && (c->dense_ms == 0 || p->best.med_ms < c->dense_ms))
            c->dense_ms = p->best.med_ms;
    }
    for (int i = 0; i < g_npaths; i++) report(c, &g_paths[i]);
    /* teardown */
    if (g_want_dense) {
        free(g_dense_ctx[0].Y);
        if (c->b->B > 1) free(g_dense_ctx[1].Y);
    }
    if (g_have_mkl) teardown_mkl();
#ifndef NO_RSB
    if (g_want_rsb) teardown_rsb();
#endif
#ifdef WITH_TOPIARY
    if (g_want_topiary) teardown_topiary();
#endif
    if (g_want_simple && c->b->B % 8 == 0) teardown_simple();
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */
static void usage(void) {
    fprintf(stderr,
            "usage: competitors [--shapes 4096x4096,300x784] [--batches 1,128] [--sparsities 0.9,0.95]\n"
            "                   [--threads 2,1] [--paths dense,mkl,rsb,topiary,simple] [--tag NAME] [--csv FILE]\n"
            "                   [--mkl PATH/libmkl_rt.so.3] [--mkl-threading auto|intel|gnu] [--max-wait SEC]\n"
            "                   [--rsb-col 0|1] [--rounds N]\n");
    exit(1);
}

static int parse_list(const char *s, double *out, int max) {
    int n = 0;
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save)) out[n++] = atof(t);
    free(copy);
    return n;
}

int main(int argc, char **argv) {
    int shapes[8][2] = {{4096, 4096}, {300, 784}}, nshape = 2;
    double batches[8] = {1, 128}, sps[8] = {0.9, 0.95}, thr[8] = {2, 1};
    int nb = 2, nsp = 2, nthr = 2;
    const char *paths = "dense,mkl,rsb";
    const char *csv = NULL;
    const char *mklpath = "/root/.pyenv/versions/3.11.7/lib/libmkl_rt.so.3";
    const char *mkl_layer = "auto";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--shapes")) {
            nshape = 0;
            char *copy = strdup(argv[++i]), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t && nshape < 8; t = strtok_r(NULL, ",", &save))
                if (sscanf(t, "%dx%d", &shapes[nshape][0], &shapes[nshape][1]) == 2) nshape++;
            free(copy);
        } else if (!strcmp(argv[i], "--batches")) nb = parse_list(argv[++i], batches, 8);
        else if (!strcmp(argv[i], "--sparsities")) nsp = parse_list(argv[++i], sps, 8);
        else if (!strcmp(argv[i], "--threads")) nthr = parse_list(argv[++i], thr, 8);
        else if (!strcmp(argv[i], "--paths")) paths = argv[++i];
        else if (!strcmp(argv[i], "--tag")) g_tag = argv[++i];
        else if (!strcmp(argv[i], "--csv")) csv = argv[++i];
        else if (!strcmp(argv[i], "--mkl")) mklpath = argv[++i];
        else if (!strcmp(argv[i], "--mkl-threading")) mkl_layer = argv[++i];
        else if (!strcmp(argv[i], "--max-wait")) g_max_wait_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rsb-col")) g_rsb_col = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds")) g_rounds = atoi(argv[++i]);
        else usage();
    }
    int want_dense = strstr(paths, "dense") != NULL, want_mkl = strstr(paths, "mkl") != NULL,
        want_rsb = strstr(paths, "rsb") != NULL;
    g_want_topiary = strstr(paths, "topiary") != NULL;
    g_want_simple = strstr(paths, "simple") != NULL;
#ifndef WITH_TOPIARY
    if (g_want_topiary) printf("# built without -DWITH_TOPIARY: topiary path skipped\n");
    g_want_topiary = 0;
#endif
    if (g_rounds < 1) g_rounds = 1;
    if (g_rounds > MAX_ROUNDS) g_rounds = MAX_ROUNDS;

    if (csv) {
        FILE *probe = fopen(csv, "r");
        int fresh = probe == NULL;
        if (probe) fclose(probe);
        g_csv = fopen(csv, "a");
        if (!g_csv) { perror(csv); return 1; }
        if (fresh)
            fprintf(g_csv, "run,shape,M,K,B,threads,sparsity,lib,variant,layout,median_ms,min_ms,calls,dense_ms,"
                           "speedup,max_rel_err,ok,cpu_util,bg_cores,tries,round_medians_ms,note\n");
    }

    printf("# run tag: %s\n", g_tag);
    printf("# OpenBLAS: %s | core %s | procs %d | OPENBLAS_CORETYPE=%s\n", openblas_get_config(),
           openblas_get_corename(), openblas_get_num_procs(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");

    /* OpenBLAS 0.3.21: single-thread sgemm stays slow until one multi-threaded
     * sgemm has run in the process -> do one 2-thread 512^3 sgemm first. */
    {
        int n = 512;
        float *a = xmalloc((size_t)n * n * 4), *bb = xmalloc((size_t)n * n * 4), *cc = xmalloc((size_t)n * n * 4);
        for (int i = 0; i < n * n; i++) { a[i] = 1e-3f * (i % 97); bb[i] = 1e-3f * (i % 89); }
        openblas_set_num_threads(2);
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, bb, n, 0.0f, cc, n);
        printf("# OpenBLAS start-up 2-thread 512^3 sgemm: %.2f ms\n", 1000 * (now_s() - t0));
        free(a); free(bb); free(cc);
    }

    int have_mkl = 0;
    if (want_mkl) have_mkl = load_mkl(mklpath, mkl_layer) == 0;
#ifdef NO_RSB
    if (want_rsb) printf("# built with -DNO_RSB: librsb paths skipped\n");
    want_rsb = 0;
#else
    if (want_rsb) {
        rsb_err_t e = rsb_lib_init(RSB_NULL_INIT_OPTIONS);
        if (e != RSB_ERR_NO_ERROR) { printf("# rsb_lib_init failed\n"); want_rsb = 0; }
        else printf("# librsb initialised, default threads=%d\n", rsb_get_threads());
    }
#endif
    fflush(stdout);

    for (int si = 0; si < nshape; si++)
        for (int pi = 0; pi < nsp; pi++) {
            Weight w;
            double t0 = now_s();
            make_weight(&w, shapes[si][0], shapes[si][1], sps[pi]);
            double chk = 0;
            for (int i = 0; i < w.nnz; i++) chk += w.val[i];
            printf("# W %dx%d s=%.2f nnz=%d checksum=%.6f (built in %.1fs)\n", w.M, w.K, w.s, w.nnz, chk,
                   now_s() - t0);
            for (int bi = 0; bi < nb; bi++) {
                Batch b;
                make_batch(&b, &w, (int)batches[bi]);
                for (int ti = 0; ti < nthr; ti++) {
                    Cell c = {&w, &b, (int)thr[ti], 0.0};
                    g_have_mkl = have_mkl;
                    g_want_dense = want_dense;
                    g_want_rsb = want_rsb;
                    run_cell(&c);
                }
                free_batch(&b);
            }
            free_weight(&w);
        }
#ifndef NO_RSB
    if (want_rsb) rsb_lib_exit(RSB_NULL_EXIT_OPTIONS);
#endif
    if (g_csv) fclose(g_csv);
    return 0;
}

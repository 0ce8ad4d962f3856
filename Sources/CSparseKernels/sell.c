// Batch 1: sliced ELLPACK (SELL-C, C = the vector's lanes: 8 for AVX2, 16 for AVX-512, 4 for NEON).
//
// The CSR SpMV pays per row: a horizontal sum, a scalar tail and the mispredicted exits of
// loops whose trip counts change from row to row (about 14 cycles a row here, a third of the
// time at 95% sparsity on 300×784). For batch 1 the vector variants therefore run a copy of the
// matrix in slices of C rows, one row per lane of an accumulator. The rows are first cut into
// chunks of contiguous rows (whole slices) of about equal work, so that threads running different
// chunks write different cache lines of y; within a chunk they are sorted by length (longest
// first, ties by row) so that a slice's rows need little padding; each slice's entries stored step
// by step (step j of lane r at Cj + r), padded to an even step count with zero weights on the
// row's last column. The kernel (sell_body.h) is one source for every C.
// Measured (AVX2, SELL-8, 1 thread, C microbenchmark against the CSR SpMV): 300×784 at 95%
// 6.3 → 5.0 µs, at 90% 11.1 → 9.5 µs, 100×300 at 95% 1.09 → 0.76 µs, 4096×4096 at 90% 864 → 790 µs.
// Sorting the whole matrix instead of each chunk had both threads write rows all over y (300×784
// at 95%, 2 threads, 8 chunks: 4.0 → 3.8 µs while a cache line's round trip between the cores
// took 210 ns, 6.4 → 4.8 µs while it took 760 ns).
// A copy is built on the first batch-1 product of each width and kept with the matrix
// (`tsk_csr_release`). Padding adds zero weights, so a row's sum is the same whatever the slice
// or chunk it lands in: the result's bits do not depend on the chunking.
#include "internal.h"

#define TSK_SELL_CHUNKS 64

struct tsk_sell {
    int32_t index_bytes;
    int32_t lanes;
    int64_t *offsets;   // slices + 1 element offsets; slice q holds `lanes` rows × an even number of steps
    int32_t *perm;      // lanes · slices: the row in each lane, or -1
    void *indices;
    float *values;
    int64_t chunks;                       // how many chunks of slices
    int64_t splits[TSK_SELL_CHUNKS + 1];  // first slice of each chunk (contiguous rows, about equal work)
};

// What `spmv_cache` points to: one copy per width (4, 8, 16 lanes), each built when first needed.
typedef struct {
    tsk_sell *by_width[3];
} tsk_sell_cache;

static int width_slot(int lanes) { return lanes == 4 ? 0 : lanes == 8 ? 1 : lanes == 16 ? 2 : -1; }

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

// The chunks of a large product's copy: enough for every core of a big machine to claim several,
// at least 8 (the count measured on 2 cores).
static int64_t large_chunks(void) {
    int64_t n = 2 * (int64_t)tsk_cpu_count();
    return n < 8 ? 8 : n > TSK_SELL_CHUNKS ? TSK_SELL_CHUNKS : n;
}

// The SELL-`lanes` copy of `w`, or NULL when memory runs out (the CSR SpMV is used instead).
static tsk_sell *sell_build(const tsk_csr *w, int lanes) {
    const int64_t m = w->rows, C = lanes;
    const int wide = w->index_bytes != 2;
    if (m > INT32_MAX) return NULL;  // the permutation holds 32-bit rows
    tsk_sell *s = calloc(1, sizeof(tsk_sell));
    sell_row *order = malloc(sizeof(sell_row) * (size_t)(m > 0 ? m : 1));
    if (!s || !order) { free(order); free(s); return NULL; }
    s->index_bytes = w->index_bytes;
    s->lanes = lanes;
    // Chunks are contiguous row ranges of about equal work, in whole slices, so that each thread
    // writes its own part of y; rows are sorted by length within a chunk. A product too small to
    // claim chunks one by one (see `tsk_spmm`) gets 2: sorting in smaller chunks pads more
    // (300×784 at 95%, AVX2, 1 thread: 5.5 µs with 2 chunks, 5.7 with 8).
    const int64_t groups = (m + C - 1) / C;
    const int64_t nnz = w->offsets[m] - w->offsets[0];
    const int64_t most = tsk_job_size(nnz * 8) == TSK_JOB_LARGE ? large_chunks() : 2;
    int64_t chunks = groups < most ? groups : most;
    if (chunks < 1) chunks = 1;
    int64_t rows[TSK_SELL_CHUNKS + 1];
    tsk_split_rows(w->offsets, m, chunks, 16, rows);
    for (int64_t c = 1; c < chunks; c++) {
        int64_t r = (rows[c] + C / 2) / C * C;
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
        slices += (r1 - r0 + C - 1) / C;
    }
    s->splits[chunks] = slices;
    s->chunks = chunks;
    s->offsets = malloc(sizeof(int64_t) * (size_t)(slices + 1));
    s->perm = malloc(sizeof(int32_t) * (size_t)(C * (slices > 0 ? slices : 1)));
    sell_row *lanes_of = malloc(sizeof(sell_row) * (size_t)(C * (slices > 0 ? slices : 1)));
    if (!s->offsets || !s->perm || !lanes_of) { free(order); free(lanes_of); sell_free(s); return NULL; }
    // Lane layout: slice q of chunk c takes the chunk's sorted rows C(q - first) ..< +C.
    int64_t total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        for (int64_t q = s->splits[c]; q < s->splits[c + 1]; q++) {
            for (int64_t r = 0; r < C; r++) {
                const int64_t i = rows[c] + C * (q - s->splits[c]) + r;
                lanes_of[C * q + r] = i < rows[c + 1] ? order[i] : (sell_row){0, -1};
            }
            const int64_t longest = lanes_of[C * q].length;  // sorted: the slice's first row is its longest
            s->offsets[q] = total;
            total += C * ((longest + 1) & ~(int64_t)1);
        }
    }
    s->offsets[slices] = total;
    free(order);
    // The kernel reads whole pairs of steps (2C entries), which the even step counts keep inside a slice.
    s->values = calloc((size_t)(total > 0 ? total : 1), sizeof(float));
    s->indices = calloc((size_t)(total > 0 ? total : 1), wide ? 4 : 2);
    if (!s->values || !s->indices) { free(lanes_of); sell_free(s); return NULL; }
    for (int64_t q = 0; q < slices; q++) {
        for (int64_t r = 0; r < C; r++) {
            const int64_t lane = C * q + r, row = lanes_of[lane].row;
            s->perm[lane] = (int32_t)row;
            if (row < 0) continue;
            const int64_t n = lanes_of[lane].length, base = w->offsets[row];
            for (int64_t j = 0, steps = (s->offsets[q + 1] - s->offsets[q]) / C; j < steps; j++) {
                const int64_t d = s->offsets[q] + C * j + r, src = j < n ? base + j : base + n - 1;
                s->values[d] = j < n ? w->values[base + j] : 0.0f;
                const int64_t col = n == 0 ? 0 : wide ? (int64_t)((const uint32_t *)w->indices)[src]
                                                      : (int64_t)((const uint16_t *)w->indices)[src];
                if (wide) ((uint32_t *)s->indices)[d] = (uint32_t)col;
                else ((uint16_t *)s->indices)[d] = (uint16_t)col;
            }
        }
    }
    free(lanes_of);
    return s;
}

// Cached in place of a copy that could not be built (out of memory, over 2^31 rows), so that the
// CSR SpMV runs without retrying the build on every call.
static tsk_sell sell_unavailable;
// Cached in place of the table when it could not be allocated.
static tsk_sell_cache cache_unavailable;

// The cache of `w`, built by the first caller (others racing it free theirs), or NULL.
static tsk_sell_cache *cache_of(const tsk_csr *w) {
    tsk_sell_cache *c = __atomic_load_n((tsk_sell_cache *const *)&w->spmv_cache, __ATOMIC_ACQUIRE);
    if (!c) {
        tsk_sell_cache *made = calloc(1, sizeof(tsk_sell_cache));
        if (!made) made = &cache_unavailable;
        tsk_sell_cache *expected = NULL;
        if (__atomic_compare_exchange_n((tsk_sell_cache **)&w->spmv_cache, &expected, made, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            c = made;
        } else {
            if (made != &cache_unavailable) free(made);
            c = expected;
        }
    }
    return c == &cache_unavailable ? NULL : c;
}

const tsk_sell *tsk_sell_of(const tsk_csr *w, int lanes) {
    const int slot = width_slot(lanes);
    tsk_sell_cache *c = slot < 0 ? NULL : cache_of(w);
    if (!c) return NULL;
    tsk_sell *s = __atomic_load_n(&c->by_width[slot], __ATOMIC_ACQUIRE);
    if (!s) {
        tsk_sell *built = sell_build(w, lanes);
        if (!built) built = &sell_unavailable;
        tsk_sell *expected = NULL;
        if (__atomic_compare_exchange_n(&c->by_width[slot], &expected, built, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            s = built;
        } else {
            if (built != &sell_unavailable) sell_free(built);
            s = expected;
        }
    }
    return s == &sell_unavailable ? NULL : s;
}

void tsk_csr_release(tsk_csr *w) {
    tsk_sell_cache *c = (tsk_sell_cache *)w->spmv_cache;
    if (c && c != &cache_unavailable) {
        for (int i = 0; i < 3; i++)
            if (c->by_width[i] != &sell_unavailable) sell_free(c->by_width[i]);
        free(c);
    }
    w->spmv_cache = NULL;
}

int tsk_sell_prefetch(const tsk_sell *s) {
    return s->offsets[s->splits[s->chunks]] * (4 + s->index_bytes) >= TSK_SELL_PREFETCH_BYTES;
}

typedef struct {
    const tsk_sell *s;
    tsk_sell_fn fn;
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
    if (q0 < q1) j->fn(j->s, j->x, j->y, j->ldy, j->bias, j->act, q0, q1);
}

void tsk_sell_run(const tsk_sell *s, tsk_sell_fn fn, int threads, const float *x, float *y,
                  int64_t ldy, const float *bias, int act, int64_t work) {
    // Large products claim the chunks one by one; smaller ones take one group of chunks per
    // thread, since every claim moves a cache line between the cores.
    const int useful = tsk_useful_threads(threads, s->chunks, work);
    const int64_t parts = tsk_job_size(work) == TSK_JOB_LARGE || useful > s->chunks ? s->chunks : useful;
    sell_job job = {s, fn, x, y, ldy, bias, act, parts};
    tsk_run_parallel(sell_chunk, &job, parts, useful, work);
}

// The kernels, one source for every width.
#define TSK_BODY "sell_body.h"
#include "instantiate.h"

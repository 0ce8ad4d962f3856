// The thread pool: the caller and up to one worker per CPU the process may use claim the chunks
// of a job dynamically (`tsk_parallel_for`, the sparse products), spinning briefly before blocking,
// backing off to the caller alone while another process takes the cores.
#define _GNU_SOURCE
#include "internal.h"

// Thread placement (sched_getcpu, sched_setaffinity, pthread_attr_setaffinity_np): glibc on Linux.
#if defined(__linux__) && defined(__GLIBC__)
#define TSK_AFFINITY 1
#else
#define TSK_AFFINITY 0
#endif

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

// MARK: - Thread pool
//
// The caller publishes a job as one 64-bit word: generation (32 bits) | chunk count (16) | next
// chunk (16). Every thread, caller included, claims chunks with a compare-and-swap on that word,
// so a worker that the scheduler does not run in time simply claims nothing: the caller does the
// work itself and the call degrades to one thread instead of waiting. Idle workers, and a caller
// waiting for a worker's last chunk, spin for at most `spin_ns` and then block on a condition.


// At most this many workers (the `sleeping` word has a bit for each); a call asks for up to
// `threads - 1` of them, and the default thread count is the CPUs the process may use.
#define TSK_MAX_WORKERS 63
_Static_assert(TSK_MAX_WORKERS <= 64, "tsk_pool_stats.worker_chunks_by_index has 64 entries");

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
// no back-off at all). In the host's slow hours (see `kind_next`) a few delays a second also
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
    // costs 100–400 ns here (see `tsk_run_parallel`).
    _Alignas(64) _Atomic uint64_t next;
    _Atomic uint64_t sleeping;  // bit i: worker i sleeps
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
                    atomic_fetch_or(&pool.sleeping, 1ull << index);
                    while ((g = (uint32_t)(atomic_load(&pool.next) >> 32)) == seen)
                        pthread_cond_wait(&pool.work_cv, &pool.lock);
                    atomic_fetch_and(&pool.sleeping, ~(1ull << index));
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

// How many threads pay, per kind of job. A job hands cache lines between the cores (the job
// word, the completion count, X, the rows of Y), and a line's round trip between this machine's
// two cores measured 210 ns in some hours and 760–1230 ns in others (the host moves the VM's
// cores). With the slow hand-offs a network's batch-1 layers ran slower on two threads than on
// one, with the quick ones faster (LeNet-300-100's three layers at 95% in a C microbenchmark:
// 9.5 µs on two threads against 6.8 on one, and 6.2 against 6.7); on a many-core machine the
// same holds between each rung of thread counts. So for each kind of tiny or medium job (its
// function, chunk count, work and thread count; a network's layer, say) the caller times its
// first runs on each rung of a ladder of thread counts, 1, 2, 4, … up to the call's count (the
// last rung), in turn, and then runs it on the fastest rung, re-timing a neighbouring rung every
// TSK_RETIME runs so that a change of the machine's state is followed. Times start as the least
// of the first 3 samples, then follow later ones with weight 1/8, each capped at twice the
// average, so that one interrupted run does not flip the choice; a rung must be 3% faster than
// every rung below it (`tsk_kind_best`). With two threads the ladder is 1, 2: the choice made
// before it existed. Threads are only timed with the workers they need already spinning: a worker
// woken by the job itself starts late, and its wake-up can even take the caller's core for tens
// of microseconds (seen here), so when they sleep the caller wakes them, runs that job alone
// untimed, and times the rung at the kind's next run. The choice changes which thread runs a
// chunk, never what a chunk computes: results are the same bits either way.
#define TSK_KINDS 64

typedef struct {
    uint64_t key;
    int64_t time[TSK_RUNGS];  // average ns per rung
    uint32_t n[TSK_RUNGS];    // samples per rung
    uint32_t runs;
    int woken;            // the rung whose workers were woken for the next run (0: none)
    uint64_t used;        // when last used, on `kind_clock`
} job_kind;

// 4-way set-associative, least recently used out: kinds that share a set (two layers of one
// network, say) do not evict each other on every run.
#define TSK_KIND_WAYS 4
static job_kind kinds[TSK_KINDS];  // guarded by pool.owner
static uint64_t kind_clock;

static job_kind *kind_of(tsk_job_fn fn, int64_t chunks, int64_t work, int threads) {
    uint64_t key = (uint64_t)(uintptr_t)fn * 0x9E3779B97F4A7C15ull ^ (uint64_t)chunks * 0xC2B2AE3D27D4EB4Full
                   ^ (uint64_t)work ^ (uint64_t)threads << 56;
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

int tsk_rungs(int threads) {
    int r = 1;
    while (r < TSK_RUNGS && (1 << (r - 1)) < threads) r++;
    return r;
}

int tsk_rung_threads(int rung, int threads) {
    const int t = 1 << rung;
    return t < threads ? t : threads;
}

int tsk_kind_best(const int64_t *time, int rungs) {
    int best = 0;
    for (int r = 1; r < rungs; r++)
        if (time[r] * 100 < time[best] * 97) best = r;
    return best;
}

int tsk_kind_rung(int64_t runs, const int64_t *time, const uint32_t *n, int rungs) {
    for (int r = 0; r < rungs; r++)
        if (n[r] < 3) return (int)((runs - 1) % rungs);
    const int best = tsk_kind_best(time, rungs);
    if (runs % TSK_RETIME != 0 || rungs < 2) return best;
    // Re-time a neighbour: the one above and the one below in turn (the only one at either end).
    if (best == 0) return 1;
    if (best == rungs - 1) return best - 1;
    return (runs / TSK_RETIME) % 2 ? best + 1 : best - 1;
}

// The rung the next run of kind `k` uses, for calls of `rungs` rungs.
static int kind_next(job_kind *k, int rungs) {
    k->runs++;
    if (k->woken) return k->woken;
    return tsk_kind_rung(k->runs, k->time, k->n, rungs);
}

// Publishes job `fn` of `chunks` chunks for the first `allowed` workers (none: only wakes them,
// to spin) and wakes sleeping workers. Called with `pool.owner` held.
// The `sleeping` bits of the first `n` workers.
static inline uint64_t first_workers(int n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }

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
// much as the job. Tiny and medium jobs run one way or the other by kind (`kind_next`); run on
// two threads, a medium job wakes a sleeping worker but never waits for it to start (the caller
// claims whatever the worker has not). A worker that the scheduler delays after it has claimed a
// chunk makes the caller wait (measured: a 50 µs SpMV took twice as long at the median with the
// other core busy), so a tiny or medium job that sees one charges the delay to the pool's budget,
// and when delays exceed it such jobs back off to the caller alone for a while (`delayed`). A
// caller that waited long enough to block on `done_cv` counts its own wake-up in the delay; it
// only blocks after `spin_ns` (50 µs) of spinning, so the worker was late by then anyway.
void tsk_run_parallel(tsk_job_fn fn, void *ctx, int64_t chunks, int threads, int64_t work) {
    if (chunks <= 0) return;  // nothing to run (and no shift by -1 in first_workers below)
    const int size = tsk_job_size(work);
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
    // Only the first `threads - 1` workers take part (fewer on a lower rung of the ladder), however
    // many earlier calls created.
    int allowed = threads - 1 < workers ? threads - 1 : workers;
    job_kind *kind = t0 ? kind_of(fn, chunks, work, threads) : NULL;
    int rung = 0;
    if (kind) {
        rung = kind_next(kind, tsk_rungs(threads));
        const int woken = kind->woken;
        kind->woken = 0;
        if (rung > 0) {
            const int want = tsk_rung_threads(rung, threads) - 1;
            allowed = want < workers ? want : workers;
        }
        const int asleep = rung > 0 && !woken && (workers > existing || (atomic_load(&pool.sleeping) & first_workers(allowed)));
        if (rung == 0 || asleep) {
            if (asleep) {
                // Spin through this run and a little past the next one's start.
                atomic_store(&pool.spin_until, t0 + 2 * kind->time[0] + atomic_load(&pool.spin_ns));
                post(fn, ctx, 0, allowed);
                kind->woken = rung;
            }
            for (int64_t c = 0; c < chunks; c++) fn(ctx, c);
            if (!asleep) {
                add_sample(&kind->time[0], &kind->n[0], now_ns() - t0);
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
        add_sample(&kind->time[rung], &kind->n[rung], end - t0);
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
        atomic_load(&pool.stat_stalls), {0}, atomic_load(&pool.stat_alone), atomic_load(&pool.stat_delays),
        (uint64_t)atomic_load(&pool.workers)};
    for (int i = 0; i < TSK_MAX_WORKERS; i++) {
        const uint64_t n = atomic_load(&pool.stat_by_worker[i].chunks);
        s.worker_chunks += n;
        s.worker_chunks_by_index[i] = n;
    }
    return s;
}

void tsk_pool_set_spin_ns(int64_t ns) { atomic_store(&pool.spin_ns, ns < 0 ? 0 : ns); }

int tsk_cpu_count(void) {
    static _Atomic int count;
    int n = atomic_load_explicit(&count, memory_order_relaxed);
    if (n > 0) return n;
#if TSK_AFFINITY
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0) n = CPU_COUNT(&mask);
#endif
    if (n < 1) {
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    }
    atomic_store_explicit(&count, n, memory_order_relaxed);
    return n;
}

// Each thread past the second must bring at least this much work (in multiply-adds, some 10 µs
// here) to the job: starting a worker and handing it cache lines costs microseconds, so on a
// many-core machine a medium product runs on a few threads rather than all of them. One or two
// threads follow the job sizes and per-kind timing above, as measured on two cores.
#define TSK_THREAD_WORK (1 << 17)

int tsk_useful_threads(int threads, int64_t chunks, int64_t work) {
    if (threads < 1) threads = 1;
    if (threads > TSK_MAX_WORKERS + 1) threads = TSK_MAX_WORKERS + 1;
    int64_t by_work = work / TSK_THREAD_WORK;
    if (by_work < 2) by_work = 2;
    if (threads > by_work) threads = (int)by_work;
    if (threads > chunks) threads = chunks < 1 ? 1 : (int)chunks;
    return threads;
}

// Panel packing: X's columns copied into panels of one variant's width (8 vectors), contiguous,
// 64-byte aligned, in scratch that each thread keeps.
#include "internal.h"

#include <pthread.h>

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

const float *tsk_pack_panels(const float *x, int64_t ldx, int64_t k, int64_t pw, int64_t panels) {
    const int64_t n = k * pw * panels;
    if (panel_cap < n) {
        pthread_once(&panel_key_once, panel_key_init);
        if (panel_key_ok) pthread_setspecific(panel_key, NULL);
        free(panel_buf);
        panel_buf = aligned_alloc(64, (size_t)((n * 4 + 63) & ~(int64_t)63));
        panel_cap = panel_buf ? n : 0;
        if (!panel_buf) return NULL;
        // Without a key (creation failed) the buffer is kept for the thread's life.
        if (panel_key_ok) pthread_setspecific(panel_key, panel_buf);
    }
    for (int64_t r = 0; r < k; r++)
        for (int64_t t = 0; t < panels; t++)
            memcpy(panel_buf + (t * k + r) * pw, x + r * ldx + t * pw, (size_t)pw * sizeof(float));
    return panel_buf;
}

// None for small batches, where X is small enough to stay in cache unpacked and packing would
// cost more than it saves.
int64_t tsk_panel_count(int64_t pw, const tsk_csr *w, int64_t batch) {
    if (pw == 0 || batch < pw || w->offsets[w->rows] == w->offsets[0]) return 0;
    return batch / pw;
}

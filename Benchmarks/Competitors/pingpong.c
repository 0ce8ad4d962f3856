// How long a cache line takes to go from one core to another and back: two threads pinned to
// cores 0 and 1 pass a counter back and forth through two cache lines, a million times.
// Build and run: gcc -O2 pingpong.c -o pingpong -lpthread && ./pingpong
// Not part of the package or of CI.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { ROUNDS = 1000000 };
static _Alignas(64) atomic_long ping;
static _Alignas(64) atomic_long pong;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *responder(void *arg) {
    (void)arg;
    pin(1);
    for (long i = 1; i <= ROUNDS; i++) {
        while (atomic_load_explicit(&ping, memory_order_acquire) != i) {}
        atomic_store_explicit(&pong, i, memory_order_release);
    }
    return NULL;
}

int main(void) {
    pin(0);
    pthread_t t;
    pthread_create(&t, NULL, responder, NULL);
    const double t0 = now_ns();
    for (long i = 1; i <= ROUNDS; i++) {
        atomic_store_explicit(&ping, i, memory_order_release);
        while (atomic_load_explicit(&pong, memory_order_acquire) != i) {}
    }
    printf("round trip %.1f ns\n", (now_ns() - t0) / ROUNDS);
    pthread_join(t, NULL);
    return 0;
}

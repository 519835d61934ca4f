/*
 * sd_pool.c -- the symdiff CPU thread pool.  See sd_pool.h for the contract.
 *
 * Design
 *   - nthreads-1 worker threads; the dispatching thread runs chunk 0 itself.
 *   - Each worker owns a cache-line-aligned slot with a 32-bit `state` word:
 *     (generation << 1) | claimed.  The dispatcher writes the job (fn, ctx,
 *     begin, end) into the slots of the workers that take part, then
 *     publishes it by storing state = (gen+1) << 1.  Whoever flips the
 *     claimed bit with a CAS runs that chunk: normally the worker, but after
 *     finishing chunk 0 the dispatcher claims ("steals") every chunk whose
 *     worker has not started yet, so a dispatch never waits for the wake-up
 *     latency of a sleeping worker (tens of microseconds on a VM).  Only the
 *     workers that get a chunk are touched, so a small n wakes few threads.
 *   - Completion: an atomic countdown `remaining` of chunks claimed by
 *     workers; the worker that brings it to zero wakes the dispatcher if (and
 *     only if) the dispatcher sleeps.
 *   - Waiting = spin with `pause` for spin_us (with sched_yield() after the
 *     first 2 us, so a waited-for thread queued on the same core can run),
 *     then futex wait (Linux) or a condition variable (elsewhere).  Sleep/wake races are closed by the
 *     "set sleeping flag (seq_cst), re-check the word, futex_wait(word, old)"
 *     pattern on one side and "change word (seq_cst), read flag" on the other.
 *   - Concurrent dispatchers: an atomic `busy` flag; whoever loses runs its
 *     loop serially instead of waiting (no blocking, no deadlock).
 *   - Nested calls: a thread-local flag set in workers and in the dispatcher
 *     while it runs chunks makes any nested sd_parallel_for serial.
 *   - fork(): the child has no workers; a pthread_atfork counter lets every
 *     pool created before the fork fall back to serial in the child.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, syscall */
#endif

#include "sd_pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#define SD_USE_FUTEX 1
#define SD_AFFINITY 1
#else
#define SD_USE_FUTEX 0
#define SD_AFFINITY 0
#endif

#define SD_CACHELINE 64
#define SD_MAX_THREADS 1024
#define SD_MIN_STACK ((size_t)8 << 20) /* 8 MiB */
#define SD_DEFAULT_SPIN_US 50

typedef struct sd_worker {
    _Alignas(SD_CACHELINE) atomic_uint state; /* (generation << 1) | claimed */
    atomic_int sleeping;                      /* 1 while (about to be) blocked */
    unsigned gen;                             /* last generation published (dispatcher-owned) */
    int stop;
    sd_task_fn fn;
    void *ctx;
    int64_t begin, end;
    struct sd_pool *pool;
    pthread_t thread;
    int excluded; /* the CPU its affinity mask leaves out, -1 none (dispatcher-owned, sd_steer) */
} sd_worker;

struct sd_pool {
    _Alignas(SD_CACHELINE) atomic_uint remaining; /* chunks still running on workers */
    atomic_int waiter_sleeping;                   /* dispatcher blocked on `remaining` */
    _Alignas(SD_CACHELINE) atomic_int busy;       /* a dispatch is in flight */
    atomic_int spin_us;
    int nthreads;
    int nworkers;
    unsigned fork_epoch;
    sd_worker *workers;
#if SD_AFFINITY
    cpu_set_t allowed; /* the creating thread's CPUs */
    int steer;         /* keep the workers off the dispatcher's CPU at each dispatch (sd_steer) */
#endif
#if !SD_USE_FUTEX
    pthread_mutex_t mu;
    pthread_cond_t cv;
#endif
};

static _Thread_local int sd_tls_in_task = 0;
static atomic_uint sd_fork_epoch = 0;
static pthread_once_t sd_atfork_once = PTHREAD_ONCE_INIT;

static void sd_atfork_child(void) { atomic_fetch_add(&sd_fork_epoch, 1u); }
static void sd_register_atfork(void) { (void)pthread_atfork(NULL, NULL, sd_atfork_child); }

/* ------------------------------------------------------------------ waiting */

static inline void sd_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static inline uint64_t sd_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* After this long (ns), spinners also sched_yield(): when the machine is busy the
 * thread we wait for may be queued on our own core, and a pure spin would keep
 * it off the CPU for a whole time slice. */
#ifndef SD_YIELD_AFTER_NS
#define SD_YIELD_AFTER_NS 10000u
#endif

/* Spin while (*word == val) == eq, for at most spin_us; returns the last value read. */
static unsigned sd_spin(atomic_uint *word, unsigned val, int eq, int spin_us) {
    unsigned v = atomic_load_explicit(word, memory_order_acquire);
    if ((v == val) != eq || spin_us <= 0)
        return v;
    const uint64_t start = sd_now_ns();
    const uint64_t deadline = start + (uint64_t)spin_us * 1000u;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            sd_cpu_relax();
            v = atomic_load_explicit(word, memory_order_acquire);
            if ((v == val) != eq)
                return v;
        }
        const uint64_t t = sd_now_ns();
        if (t >= deadline)
            return v;
        if (t - start >= SD_YIELD_AFTER_NS)
            sched_yield();
    }
}

/* Block while *word == val (may return spuriously; callers loop). */
static void sd_block_while_eq(sd_pool *p, atomic_uint *word, unsigned val) {
#if SD_USE_FUTEX
    (void)p;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
#else
    pthread_mutex_lock(&p->mu);
    while (atomic_load(word) == val)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
#endif
}

static void sd_wake(sd_pool *p, atomic_uint *word) {
#if SD_USE_FUTEX
    (void)p;
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
#endif
}

/* ------------------------------------------------------------------ workers */

static void *sd_worker_main(void *arg) {
    sd_worker *w = (sd_worker *)arg;
    sd_pool *p = w->pool;
    /* The slot starts as "generation 0, claimed" (= 1); a job may already be
     * published before this thread runs, so start from that, not a load. */
    unsigned last = 1u;
    sd_tls_in_task = 1; /* anything a worker dispatches runs serially */
    for (;;) {
        unsigned s = sd_spin(&w->state, last, 1,
                             atomic_load_explicit(&p->spin_us, memory_order_relaxed));
        while (s == last) {
            atomic_store(&w->sleeping, 1); /* seq_cst: pairs with the dispatcher */
            s = atomic_load(&w->state);
            if (s == last)
                sd_block_while_eq(p, &w->state, last);
            atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
            s = atomic_load_explicit(&w->state, memory_order_acquire);
        }
        /* A new generation: claim it unless the dispatcher already did. */
        int claimed = 0;
        while (!(s & 1u)) {
            if (atomic_compare_exchange_weak_explicit(&w->state, &s, s | 1u, memory_order_acquire,
                                                      memory_order_acquire)) {
                claimed = 1;
                s |= 1u;
                break;
            }
        }
        last = s;
        if (!claimed)
            continue; /* stolen by the dispatcher */
        if (w->stop)
            break;
        w->fn(w->ctx, w->begin, w->end);
        if (atomic_fetch_sub(&p->remaining, 1u) == 1u && atomic_load(&p->waiter_sleeping))
            sd_wake(p, &p->remaining);
    }
    return NULL;
}

/* Keep a worker off the dispatcher's CPU. Where the CPUs share no cache level (the vCPUs of some VMs),
 * Linux wakes a sleeping thread on the waker's CPU when its previous CPU is busy and leaves it queued
 * there behind the waker, which then steals and runs every chunk itself: measured on a 2-vCPU EPYC VM,
 * a third of new pools ran 2-task products at one thread's speed for as long as they were timed. So
 * at each dispatch a worker's mask becomes the pool's CPUs minus the dispatcher's current one
 * (sched_getcpu is a vDSO read; the mask is set, one syscall, only when that CPU changed). */
static void sd_steer(sd_pool *p, sd_worker *w) {
#if SD_AFFINITY
    if (!p->steer)
        return;
    int c = sched_getcpu();
    if (c < 0 || c == w->excluded || !CPU_ISSET(c, &p->allowed))
        return;
    cpu_set_t m = p->allowed;
    CPU_CLR(c, &m);
    if (pthread_setaffinity_np(w->thread, sizeof m, &m) == 0)
        w->excluded = c;
#else
    (void)p;
    (void)w;
#endif
}

static void sd_publish(sd_pool *p, sd_worker *w) {
    sd_steer(p, w); /* (the dispatcher may have moved since: then a spinning worker shares its CPU) */
    w->gen++;
    atomic_store(&w->state, w->gen << 1); /* seq_cst: publishes the job fields */
    if (atomic_load(&w->sleeping))
        sd_wake(p, &w->state);
}

static void sd_stop_workers(sd_pool *p, int count) {
    for (int i = 0; i < count; i++) {
        sd_worker *w = &p->workers[i];
        w->stop = 1;
        sd_publish(p, w);
    }
    for (int i = 0; i < count; i++)
        pthread_join(p->workers[i].thread, NULL);
}

/* ------------------------------------------------------------------ public */

int sd_pool_default_threads(void) {
    const char *s = getenv("SYMDIFF_NUM_THREADS");
    if (s && *s) {
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (end && *end == '\0' && v > 0)
            return v > SD_MAX_THREADS ? SD_MAX_THREADS : (int)v;
    }
#if defined(__linux__)
    {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            int c = CPU_COUNT(&set);
            if (c > 0)
                return c > SD_MAX_THREADS ? SD_MAX_THREADS : c;
        }
    }
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1)
        return 1;
    return c > SD_MAX_THREADS ? SD_MAX_THREADS : (int)c;
}

sd_pool *sd_pool_create(int nthreads) {
    pthread_once(&sd_atfork_once, sd_register_atfork);
    if (nthreads <= 0)
        nthreads = sd_pool_default_threads();
    if (nthreads > SD_MAX_THREADS)
        nthreads = SD_MAX_THREADS;

    void *mem = NULL;
    if (posix_memalign(&mem, SD_CACHELINE, sizeof(sd_pool)) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    sd_pool *p = (sd_pool *)mem;
    memset(p, 0, sizeof *p);
    atomic_init(&p->remaining, 0u);
    atomic_init(&p->waiter_sleeping, 0);
    atomic_init(&p->busy, 0);
    int spin = SD_DEFAULT_SPIN_US;
    {
        const char *s = getenv("SYMDIFF_SPIN_US");
        if (s && *s) {
            char *end = NULL;
            long v = strtol(s, &end, 10);
            if (end && *end == '\0' && v >= 0)
                spin = v > 1000000 ? 1000000 : (int)v;
        }
    }
    atomic_init(&p->spin_us, spin);
    p->nthreads = nthreads;
    p->nworkers = nthreads - 1;
    p->fork_epoch = atomic_load(&sd_fork_epoch);
#if SD_AFFINITY
    {   /* SYMDIFF_WORKER_AFFINITY=0: never touch the workers' CPU masks */
        const char *s = getenv("SYMDIFF_WORKER_AFFINITY");
        p->steer = !(s && strcmp(s, "0") == 0) && sched_getaffinity(0, sizeof p->allowed, &p->allowed) == 0
                   && CPU_COUNT(&p->allowed) > 1;
    }
#endif
#if !SD_USE_FUTEX
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
#endif
    if (p->nworkers == 0)
        return p;

    if (posix_memalign(&mem, SD_CACHELINE, sizeof(sd_worker) * (size_t)p->nworkers) != 0) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->workers = (sd_worker *)mem;
    memset(p->workers, 0, sizeof(sd_worker) * (size_t)p->nworkers);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    size_t stack = 0;
    pthread_attr_getstacksize(&attr, &stack);
    if (stack < SD_MIN_STACK)
        pthread_attr_setstacksize(&attr, SD_MIN_STACK);

    /* Workers inherit a fully blocked signal mask: signals go to app threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int created = 0, err = 0;
    for (; created < p->nworkers; created++) {
        sd_worker *w = &p->workers[created];
        atomic_init(&w->state, 1u);
        w->gen = 0u;
        atomic_init(&w->sleeping, 0);
        w->pool = p;
        w->excluded = -1;
        err = pthread_create(&w->thread, &attr, sd_worker_main, w);
        if (err)
            break;
        sd_steer(p, w); /* off the creating thread's CPU from the start */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);

    if (err) {
        sd_stop_workers(p, created);
#if !SD_USE_FUTEX
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
#endif
        free(p->workers);
        free(p);
        errno = err;
        return NULL;
    }
    return p;
}

void sd_pool_destroy(sd_pool *p) {
    if (!p)
        return;
    /* In a forked child the workers do not exist: just free the memory. */
    if (p->nworkers > 0 && p->fork_epoch == atomic_load(&sd_fork_epoch))
        sd_stop_workers(p, p->nworkers);
#if !SD_USE_FUTEX
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
#endif
    free(p->workers);
    free(p);
}

int sd_pool_num_threads(const sd_pool *p) { return p ? p->nthreads : 1; }

void sd_pool_set_spin_us(sd_pool *p, int spin_us) {
    if (p)
        atomic_store(&p->spin_us, spin_us < 0 ? 0 : spin_us);
}

void sd_parallel_for(void *vpool, sd_task_fn fn, void *ctx, int64_t n) {
    sd_pool *p = (sd_pool *)vpool;
    if (n <= 0)
        return;
    if (!p || n == 1 || p->nworkers == 0 || sd_tls_in_task ||
        p->fork_epoch != atomic_load_explicit(&sd_fork_epoch, memory_order_relaxed)) {
        fn(ctx, 0, n);
        return;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&p->busy, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        fn(ctx, 0, n); /* another thread owns the pool: run here, serially */
        return;
    }

    const int nparts = n < (int64_t)p->nthreads ? (int)n : p->nthreads;
    const int64_t q = n / nparts, r = n % nparts;
    atomic_store_explicit(&p->remaining, (unsigned)(nparts - 1), memory_order_relaxed);
    for (int k = 1; k < nparts; k++) {
        sd_worker *w = &p->workers[k - 1];
        const int64_t begin = k * q + (k < r ? k : r);
        w->fn = fn;
        w->ctx = ctx;
        w->begin = begin;
        w->end = begin + q + (k < r ? 1 : 0);
        sd_publish(p, w);
    }

    sd_tls_in_task = 1;
    fn(ctx, 0, q + (r > 0 ? 1 : 0));
    /* Run every chunk whose worker has not picked it up yet. */
    unsigned stolen = 0u;
    for (int k = 1; k < nparts; k++) {
        sd_worker *w = &p->workers[k - 1];
        unsigned s = w->gen << 1;
        if (atomic_load_explicit(&w->state, memory_order_relaxed) == s &&
            atomic_compare_exchange_strong_explicit(&w->state, &s, s | 1u, memory_order_acquire,
                                                    memory_order_relaxed)) {
            fn(ctx, w->begin, w->end);
            stolen++;
        }
    }
    sd_tls_in_task = 0;
    if (stolen)
        atomic_fetch_sub(&p->remaining, stolen);

    /* spin until the countdown reaches zero, then sleep on it */
    unsigned rem = sd_spin(&p->remaining, 0u, 0, atomic_load_explicit(&p->spin_us, memory_order_relaxed));
    if (rem != 0u) {
        atomic_store(&p->waiter_sleeping, 1); /* seq_cst: pairs with the workers */
        while ((rem = atomic_load(&p->remaining)) != 0u)
            sd_block_while_eq(p, &p->remaining, rem);
        atomic_store_explicit(&p->waiter_sleeping, 0, memory_order_relaxed);
    }
    atomic_thread_fence(memory_order_acquire);
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

/*
 * sd_pool.h -- the symdiff CPU thread pool (plain C11 + pthreads, no Python).
 *
 * Generated kernels call sd_parallel_for(); a pool is created and owned by one
 * compiled function (no global pool).  The same two files (sd_pool.h/sd_pool.c)
 * are compiled into the Python extension codegen.native and can be compiled
 * on their own into a shared library that a plain C program links against:
 *
 *     cc -O2 -fPIC -shared -pthread sd_pool.c -o libsd_pool.so
 *
 * Semantics
 *   sd_parallel_for(pool, fn, ctx, n) runs fn(ctx, begin, end) over [0, n),
 *   split into min(n, nthreads) contiguous balanced chunks (chunk sizes differ
 *   by at most one; chunk k goes to thread k, the calling thread runs chunk 0),
 *   and returns when every chunk is done.  It runs fn(ctx, 0, n) directly on
 *   the calling thread when pool is NULL, n <= 1, the pool has one thread, the
 *   call is nested inside a task of any pool, the pool is busy with a dispatch
 *   from another thread, or the process has forked since the pool was created.
 *   n <= 0 calls nothing.  "Nested" means: inside a chunk run by a worker or by
 *   a dispatcher that took the pool; a call that ran directly (n == 1, NULL or
 *   busy pool, ...) holds nothing, so a loop nested in it may still use a pool.
 *
 *   Workers spin for a short while (default 50 us, see sd_pool_set_spin_us)
 *   waiting for the next dispatch, then sleep on a futex (Linux) or a condition
 *   variable (elsewhere), so an idle pool burns no CPU.  Worker stacks are at
 *   least 8 MiB.
 *
 * Thread safety: sd_parallel_for may be called concurrently from any number of
 * threads on the same pool (one wins the pool, the others run serially).
 * sd_pool_destroy must not race with sd_parallel_for on the same pool.
 */
#ifndef SD_POOL_H
#define SD_POOL_H

#include <stdint.h>

#ifndef SD_POOL_API
#  if defined(_WIN32)
#    define SD_POOL_API
#  else
#    define SD_POOL_API __attribute__((visibility("default")))
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sd_pool sd_pool;

/* Task body: process the half-open index range [begin, end). */
typedef void (*sd_task_fn)(void *ctx, int64_t begin, int64_t end);

/* Create a pool of nthreads threads in all (the caller counts as one, so
 * nthreads-1 workers are started).  nthreads <= 0 selects the default:
 * $SYMDIFF_NUM_THREADS if set to a positive integer, else the number of CPUs
 * this process may run on.  Returns NULL (errno set) on failure. */
SD_POOL_API sd_pool *sd_pool_create(int nthreads);

/* Stop and join the workers and free the pool.  NULL is a no-op. */
SD_POOL_API void sd_pool_destroy(sd_pool *pool);

/* Total thread count (workers + caller); 1 for NULL. */
SD_POOL_API int sd_pool_num_threads(const sd_pool *pool);

/* How long (microseconds) workers and the dispatcher spin before sleeping.
 * 0 = sleep at once.  Default 50 us, or $SYMDIFF_SPIN_US at creation time. */
SD_POOL_API void sd_pool_set_spin_us(sd_pool *pool, int spin_us);

/* The default thread count sd_pool_create(0) would use. */
SD_POOL_API int sd_pool_default_threads(void);

/* Run fn over [0, n); see above.  `pool` is an sd_pool* (void* so generated
 * code can pass it through untyped). */
SD_POOL_API void sd_parallel_for(void *pool, sd_task_fn fn, void *ctx, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* SD_POOL_H */

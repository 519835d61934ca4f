/*
 * demo.c -- call a symdiff-compiled model from plain C (no Python at run time).
 *
 * The model is examples/c_demo/model.py (a 2-16-16-1 tanh MLP with an MSE loss, float64,
 * batch 1), exported with
 *
 *     symdiff compile examples/c_demo/model.py --name tiny -o build/c_demo
 *
 * which writes libtiny.so and tiny.h (plus tiny.o, tiny.ll, ...). Build and run:
 *
 *     cc -O2 examples/c_demo/demo.c -Ibuild/c_demo -Lbuild/c_demo -ltiny \
 *        -Wl,-rpath,build/c_demo -o build/c_demo/demo
 *     build/c_demo/demo            # loss and gradients, one line per output
 *     build/c_demo/demo 1000000    # ... then the time per call over 1e6 calls
 *
 * (or: make -C examples/c_demo run). The timing lines give wall-clock and thread CPU time per
 * call; on a busy machine the CPU time is the one that measures the code.
 *
 * Inputs are deterministic: element i of the argument filled with seed s is
 * 0.5 * sin(s + 0.7 * i) (tests/test_cli_c_demo.py recomputes them in NumPy).
 */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tiny.h"

static void fill(double *a, int64_t n, double seed) {
    for (int64_t i = 0; i < n; i++) a[i] = 0.5 * sin(seed + 0.7 * (double)i);
}

static void print_array(const char *name, const double *a, int64_t n) {
    printf("%s", name);
    for (int64_t i = 0; i < n; i++) printf(" %.17g", a[i]);
    printf("\n");
}

static double now_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 0;

    /* inputs and parameters (shapes as tiny.h documents them) */
    double x[1 * 2], y[1 * 1];
    double W1[2 * 16], b1[16], W2[16 * 16], b2[16], W3[16 * 1], b3[1];
    fill(x, 2, 1.0);   fill(y, 1, 2.0);
    fill(W1, 32, 3.0); fill(b1, 16, 4.0);
    fill(W2, 256, 5.0); fill(b2, 16, 6.0);
    fill(W3, 16, 7.0); fill(b3, 1, 8.0);

    /* outputs: the loss and one gradient per parameter */
    double loss, gW1[2 * 16], gb1[16], gW2[16 * 16], gb2[16], gW3[16 * 1], gb3[1];

    tiny_args a = {
        .x = x, .y = y, .W1 = W1, .b1 = b1, .W2 = W2, .b2 = b2, .W3 = W3, .b3 = b3,
        .loss = &loss, .grad_W1 = gW1, .grad_b1 = gb1, .grad_W2 = gW2, .grad_b2 = gb2,
        .grad_W3 = gW3, .grad_b3 = gb3,
    };
    void *ws = tiny_workspace_alloc();   /* scratch memory, reused by every call */
    if (!ws || tiny_call(&a, ws, NULL) != 0) {  /* pool NULL: run on this thread */
        fprintf(stderr, "demo: out of memory\n");
        return 1;
    }

    print_array("loss", &loss, 1);
    print_array("grad_W1", gW1, 2 * 16);
    print_array("grad_b1", gb1, 16);
    print_array("grad_W2", gW2, 16 * 16);
    print_array("grad_b2", gb2, 16);
    print_array("grad_W3", gW3, 16 * 1);
    print_array("grad_b3", gb3, 1);

    if (iters > 0) {
        /* the raw entry point takes the pointers in tiny.h's argument order, then the workspace */
        void *args[TINY_NUM_ARGS + 1] = {x, W1, b1, W2, b2, W3, b3, y, &loss, gW1, gb1, gW2, gb2, gW3, gb3, ws};
        for (long i = 0; i < iters / 10 + 1; i++) tiny(args, NULL);  /* warm up */
        /* wall clock, and this thread's CPU time (not counting time the OS ran other work) */
        double w0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < iters; i++) tiny_call(&a, ws, NULL);
        double w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        for (long i = 0; i < iters; i++) tiny(args, NULL);  /* the raw entry point */
        double w2 = now_ns(CLOCK_MONOTONIC), c2 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        printf("per_call_ns tiny_call wall %.1f cpu %.1f\n", (w1 - w0) / (double)iters, (c1 - c0) / (double)iters);
        printf("per_call_ns raw_entry wall %.1f cpu %.1f\n", (w2 - w1) / (double)iters, (c2 - c1) / (double)iters);
    }
    tiny_workspace_free(ws);
    return 0;
}

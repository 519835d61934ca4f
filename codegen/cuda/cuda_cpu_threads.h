/* cuda_cpu_threads.h -- the thread model of cuda_cpu.h (included by it, after the qualifiers, the
 * runtime API subset and the intrinsics; not a header of its own). See cuda_cpu.h for the design. */
/* ---- the thread model ------------------------------------------------------------------------------ */
namespace sd_cpu {

/* Coroutine contexts. x86-64: a 6-register switch in assembly (no system call); elsewhere, or with
 * SD_CUDA_CPU_UCONTEXT defined: ucontext (swapcontext also saves the signal mask: a system call). */
#if defined(__x86_64__) && !defined(SD_CUDA_CPU_UCONTEXT)
#define SD_CPU_ASM_SWITCH 1
extern "C" void sd_cpu_swap(void **save_sp, void *new_sp) __attribute__((visibility("hidden")));
__asm__(
    ".pushsection .text\n"
    ".p2align 4\n"
    ".type sd_cpu_swap,@function\n"
    "sd_cpu_swap:\n"           /* rdi: where to save the current sp, rsi: the sp to resume */
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size sd_cpu_swap, .-sd_cpu_swap\n"
    ".popsection\n");
struct Ctx {
    void *sp;
};
inline void ctx_switch(Ctx *from, Ctx *to) { sd_cpu_swap(&from->sp, to->sp); }
inline void ctx_make(Ctx *c, char *lo, size_t size, void (*entry)(), const Ctx *) {
    uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                 /* fake return address of entry (it never returns) */
    *--sp = (uint64_t)entry;   /* popped by `ret` */
    for (int i = 0; i < 6; ++i) *--sp = 0; /* rbp rbx r12 r13 r14 r15 */
    uint32_t csr[2];
    __asm__ __volatile__("stmxcsr %0\n\tfnstcw %1" : "=m"(csr[0]), "=m"(csr[1]));
    *--sp = (uint64_t)csr[0] | ((uint64_t)(csr[1] & 0xffff) << 32);
    c->sp = sp;
}
inline void ctx_template(Ctx *) {}
#else
struct Ctx {
    ucontext_t uc;
};
inline void ctx_switch(Ctx *from, Ctx *to) {
    if (swapcontext(&from->uc, &to->uc) != 0) abort();
}
inline void ctx_make(Ctx *c, char *lo, size_t size, void (*entry)(), const Ctx *tmpl) {
    c->uc = tmpl->uc;
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = 0;
    makecontext(&c->uc, entry, 0);
}
inline void ctx_template(Ctx *t) {
    if (getcontext(&t->uc) != 0) abort();
}
#endif

enum { RUNNABLE = 0, WAIT_BLOCK = 1, WAIT_WARP = 2, DONE = 3 };
static const size_t STACK_BYTES = 128 * 1024; /* per emulated thread; a guard page below each */

struct Thread {
    uint3 idx;
    int lin;      /* linear thread index in the block */
    int state;
    unsigned gen; /* shuffles done: selects the slot bank */
    Ctx ctx;
};

struct Block {
    Thread *th;        /* one per thread of the block */
    int n;             /* threads in the block */
    int cap;           /* allocated Thread slots / stacks */
    char *stacks;      /* cap * (STACK_BYTES + page) bytes, mmap'ed */
    size_t page;
    int live, arrived; /* block barrier: threads not done / waiting */
    int nwarps;
    int *warp_live, *warp_arrived;
    unsigned char *shfl; /* 2 banks x 8 bytes per thread: shuffle exchange slots */
    int started;         /* all threads have coroutines (else only thread 0) */
    int direct;          /* 1 while threads run as plain calls (no barrier allowed) */
    Ctx sched, tmpl, dead;
    void (*fn)(void *);
    void *arg;
};

inline thread_local Block *t_blk = 0;
inline thread_local Thread *t_cur = 0;
inline thread_local uint3 t_blockIdx = {0, 0, 0};
inline thread_local dim3 t_blockDim;
inline thread_local dim3 t_gridDim;

[[noreturn]] inline void fatal(const char *what) {
    Thread *t = t_cur;
    fprintf(stderr, "cuda_cpu.h: %s (block (%u,%u,%u), thread (%u,%u,%u))\n", what, t_blockIdx.x, t_blockIdx.y,
            t_blockIdx.z, t ? t->idx.x : 0u, t ? t->idx.y : 0u, t ? t->idx.z : 0u);
    fflush(stderr);
    abort();
}

inline void reserve(Block *b, int n) {
    if (n <= b->cap) return;
    if (b->stacks) munmap(b->stacks, (size_t)b->cap * (STACK_BYTES + b->page));
    free(b->th);
    free(b->warp_live);
    free(b->warp_arrived);
    free(b->shfl);
    b->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = (size_t)n * (STACK_BYTES + b->page);
    void *m = mmap(0, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) fatal("cannot map coroutine stacks");
    b->stacks = (char *)m;
    for (int i = 0; i < n; ++i) /* guard page at the low end of each stack (stacks grow down) */
        mprotect(b->stacks + (size_t)i * (STACK_BYTES + b->page), b->page, PROT_NONE);
    b->th = (Thread *)calloc((size_t)n, sizeof(Thread));
    int nw = (n + 31) / 32;
    b->warp_live = (int *)calloc((size_t)nw, sizeof(int));
    b->warp_arrived = (int *)calloc((size_t)nw, sizeof(int));
    b->shfl = (unsigned char *)calloc((size_t)n, 16);
    if (!b->th || !b->warp_live || !b->warp_arrived || !b->shfl) fatal("out of memory");
    b->cap = n;
}

inline void release_block(Block *b) {
    for (int i = 0; i < b->n; ++i)
        if (b->th[i].state == WAIT_BLOCK) b->th[i].state = RUNNABLE;
    b->arrived = 0;
}

inline void release_warp(Block *b, int w) {
    int hi = (w + 1) * 32 < b->n ? (w + 1) * 32 : b->n;
    for (int i = w * 32; i < hi; ++i)
        if (b->th[i].state == WAIT_WARP) b->th[i].state = RUNNABLE;
    b->warp_arrived[w] = 0;
}

/* Leave the current thread `self` (suspended at a barrier, or done) for the next runnable thread in
 * round-robin order; the scheduler when every thread is done. */
inline void switch_away(Block *b, Thread *self, Ctx *save) {
    int n = b->n;
    for (int k = 1; k <= n; ++k) {
        Thread *t = &b->th[(self->lin + k) % n];
        if (t->state == RUNNABLE) {
            if (t == self) return; /* released the barrier it waited at: go on */
            t_cur = t;
            ctx_switch(save, &t->ctx);
            t_cur = self; /* resumed */
            return;
        }
    }
    if (b->live == 0) {
        ctx_switch(save, &b->sched);
        return;
    }
    int wb = 0, ww = 0;
    for (int i = 0; i < n; ++i) {
        wb += b->th[i].state == WAIT_BLOCK;
        ww += b->th[i].state == WAIT_WARP;
    }
    char msg[200];
    snprintf(msg, sizeof msg, "deadlock: %d thread(s) wait at __syncthreads, %d at a warp barrier/shuffle, "
             "the others have exited (barrier in divergent code?)", wb, ww);
    fatal(msg);
}

inline void trampoline() {
    Block *b = t_blk;
    b->fn(b->arg);
    Thread *t = t_cur;
    t->state = DONE;
    int w = t->lin / 32;
    b->live--;
    b->warp_live[w]--;
    if (b->arrived > 0 && b->arrived == b->live) release_block(b);
    if (b->warp_arrived[w] > 0 && b->warp_arrived[w] == b->warp_live[w]) release_warp(b, w);
    if (!b->started) ctx_switch(&b->dead, &b->sched); /* thread 0 finished before any barrier */
    switch_away(b, t, &b->dead);                       /* never resumed */
    fatal("a finished thread was resumed");
}

inline void make_coroutine(Block *b, Thread *t) {
    ctx_make(&t->ctx, b->stacks + (size_t)t->lin * (STACK_BYTES + b->page) + b->page, STACK_BYTES, trampoline,
             &b->tmpl);
}

inline void start_all(Block *b) {
    for (int i = 1; i < b->n; ++i) make_coroutine(b, &b->th[i]);
    b->started = 1;
}

inline int env_int(const char *name, int dflt) {
    const char *s = getenv(name);
    return s && *s ? atoi(s) : dflt;
}

/* Run one block: thread 0 as a coroutine; the others as plain calls if it never synchronised, else
 * as coroutines that hand over to each other at barriers until all are done. */
inline void run_block(Block *b, int allow_direct) {
    int n = b->n;
    b->live = n;
    b->arrived = 0;
    b->started = n == 1;
    b->direct = 0;
    b->nwarps = (n + 31) / 32;
    for (int w = 0; w < b->nwarps; ++w) {
        b->warp_live[w] = (w + 1) * 32 < n ? 32 : n - w * 32;
        b->warp_arrived[w] = 0;
    }
    unsigned bx = t_blockDim.x, by = t_blockDim.y;
    for (int i = 0; i < n; ++i) {
        Thread *t = &b->th[i];
        t->lin = i;
        t->idx.x = (unsigned)i % bx;
        t->idx.y = ((unsigned)i / bx) % by;
        t->idx.z = (unsigned)i / (bx * by);
        t->state = RUNNABLE;
        t->gen = 0;
    }
    make_coroutine(b, &b->th[0]);
    t_cur = &b->th[0];
    ctx_switch(&b->sched, &b->th[0].ctx);
    if (b->live > 0) { /* thread 0 finished without synchronising */
        if (allow_direct) {
            b->direct = 1;
            for (int i = 1; i < n; ++i) {
                t_cur = &b->th[i];
                b->fn(b->arg);
                b->th[i].state = DONE;
            }
            b->direct = 0;
        } else {
            start_all(b);
            t_cur = &b->th[1];
            ctx_switch(&b->sched, &b->th[1].ctx);
        }
    }
    t_cur = 0;
}

struct Launch {
    dim3 grid, block;
    void (*fn)(void *);
    void *arg;
    long long nblocks;
    int workers;
    int worker;
};

inline thread_local Block t_block_state = {};

inline void *run_blocks(void *p) {
    Launch *L = (Launch *)p;
    Block *b = &t_block_state;
    int n = (int)(L->block.x * L->block.y * L->block.z);
    reserve(b, n);
    ctx_template(&b->tmpl);
    b->n = n;
    b->fn = L->fn;
    b->arg = L->arg;
    Block *saved_blk = t_blk;
    uint3 saved_idx = t_blockIdx;
    dim3 saved_bd = t_blockDim, saved_gd = t_gridDim;
    t_blk = b;
    t_blockDim = L->block;
    t_gridDim = L->grid;
    int allow_direct = env_int("SD_CUDA_CPU_DIRECT", 1);
    for (long long k = L->worker; k < L->nblocks; k += L->workers) {
        t_blockIdx.x = (unsigned)(k % L->grid.x);
        t_blockIdx.y = (unsigned)((k / L->grid.x) % L->grid.y);
        t_blockIdx.z = (unsigned)(k / ((long long)L->grid.x * L->grid.y));
        run_block(b, allow_direct);
    }
    t_blk = saved_blk;
    t_blockIdx = saved_idx;
    t_blockDim = saved_bd;
    t_gridDim = saved_gd;
    return 0;
}

/* Run fn(arg) as the body of every thread of a grid. */
inline void launch_raw(dim3 grid, dim3 block, void (*fn)(void *), void *arg) {
    long long nthreads = (long long)block.x * block.y * block.z;
    long long nblocks = (long long)grid.x * grid.y * grid.z;
    if (nthreads <= 0 || nthreads > 1024 || nblocks <= 0 || block.z > 64 || grid.y > 65535 || grid.z > 65535) {
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    int workers = env_int("SD_CUDA_CPU_THREADS", 1);
    if (workers < 1) workers = 1;
    if (workers > nblocks) workers = (int)nblocks;
    if (workers == 1) {
        Launch L = {grid, block, fn, arg, nblocks, 1, 0};
        run_blocks(&L);
        return;
    }
    Launch *Ls = (Launch *)calloc((size_t)workers, sizeof(Launch));
    pthread_t *ids = (pthread_t *)calloc((size_t)workers, sizeof(pthread_t));
    if (!Ls || !ids) fatal("out of memory");
    for (int w = 0; w < workers; ++w) {
        Launch L = {grid, block, fn, arg, nblocks, workers, w};
        Ls[w] = L;
    }
    for (int w = 1; w < workers; ++w)
        if (pthread_create(&ids[w], 0, run_blocks, &Ls[w]) != 0) fatal("pthread_create failed");
    run_blocks(&Ls[0]);
    for (int w = 1; w < workers; ++w) pthread_join(ids[w], 0);
    free(Ls);
    free(ids);
}

template <typename F>
inline void launch(dim3 grid, dim3 block, const F &body) {
    launch_raw(grid, block, [](void *p) { (*(const F *)p)(); }, (void *)&body);
}

/* kernel<<<grid, block>>>(args...): the arguments are evaluated once, at the launch, and converted to
 * the kernel's parameter types (as CUDA copies them into the launch); every thread gets those values.
 * A C++20 pack capture holds them: one closure member each (a std::tuple of a fused kernel's 100+
 * parameters cost seconds of template instantiation per source). */
template <typename... P, typename... A>
inline void launch_kernel(dim3 grid, dim3 block, void (*kernel)(P...), A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    launch(grid, block, [kernel, ... ps = static_cast<P>(std::forward<A>(args))]() { kernel(ps...); });
}

inline Block *barrier_enter(const char *what) {
    Block *b = t_blk;
    if (!b || !t_cur) fatal("barrier outside a kernel");
    if (b->direct) {
        char msg[220];
        snprintf(msg, sizeof msg, "%s reached by a thread although thread 0 of its block finished without one "
                 "(block-divergent synchronisation; set SD_CUDA_CPU_DIRECT=0 to emulate it)", what);
        fatal(msg);
    }
    if (!b->started) start_all(b); /* first barrier of the block: the other threads get coroutines */
    return b;
}

inline void warp_barrier() {
    Block *b = barrier_enter("a warp barrier/shuffle");
    Thread *t = t_cur;
    int w = t->lin / 32;
    t->state = WAIT_WARP;
    if (++b->warp_arrived[w] == b->warp_live[w]) release_warp(b, w);
    switch_away(b, t, &t->ctx);
}

/* Every lane publishes `var` in the slot bank of this shuffle, meets its warp, reads lane src_lin's slot.
 * Two banks alternate: a lane cannot reach the shuffle after next (which reuses this bank) before
 * every lane of its warp has passed the next one's barrier, i.e. has read this one. */
template <typename T>
inline T shfl_from(T var, int src_lin) {
    static_assert(sizeof(T) <= 8, "shuffles of at most 8 bytes");
    Block *b = t_blk;
    Thread *t = t_cur;
    unsigned char *bank = b->shfl + (size_t)(t->gen & 1u) * 8 * (size_t)b->n;
    t->gen++;
    memcpy(bank + 8 * (size_t)t->lin, &var, sizeof(T));
    warp_barrier();
    T r = var;
    if (src_lin >= 0 && src_lin < b->n) memcpy(&r, bank + 8 * (size_t)src_lin, sizeof(T));
    return r;
}

} /* namespace sd_cpu */

#define threadIdx (::sd_cpu::t_cur->idx)
#define blockIdx (::sd_cpu::t_blockIdx)
#define blockDim (::sd_cpu::t_blockDim)
#define gridDim (::sd_cpu::t_gridDim)
static const int warpSize = 32;

inline void __syncthreads() {
    sd_cpu::Block *b = sd_cpu::barrier_enter("__syncthreads");
    sd_cpu::Thread *t = sd_cpu::t_cur;
    t->state = sd_cpu::WAIT_BLOCK;
    if (++b->arrived == b->live) sd_cpu::release_block(b);
    sd_cpu::switch_away(b, t, &t->ctx);
}

inline void __syncwarp(unsigned int mask = 0xffffffffu) {
    (void)mask;
    sd_cpu::warp_barrier();
}

/* width: a power of two <= 32; lanes are grouped in segments of `width`. */
template <typename T>
inline T __shfl_sync(unsigned int, T var, int src_lane, int width = 32) {
    int lin = sd_cpu::t_cur->lin, lane = lin & 31;
    int seg = lane & ~(width - 1);
    return sd_cpu::shfl_from(var, lin - lane + seg + (src_lane & (width - 1)));
}
template <typename T>
inline T __shfl_down_sync(unsigned int, T var, unsigned int delta, int width = 32) {
    int lin = sd_cpu::t_cur->lin, lane = lin & 31;
    int in_seg = lane & (width - 1);
    return sd_cpu::shfl_from(var, in_seg + (int)delta < width ? lin + (int)delta : lin);
}
template <typename T>
inline T __shfl_up_sync(unsigned int, T var, unsigned int delta, int width = 32) {
    int lin = sd_cpu::t_cur->lin, lane = lin & 31;
    int in_seg = lane & (width - 1);
    return sd_cpu::shfl_from(var, in_seg - (int)delta >= 0 ? lin - (int)delta : lin);
}
template <typename T>
inline T __shfl_xor_sync(unsigned int, T var, int lane_mask, int width = 32) {
    int lin = sd_cpu::t_cur->lin, lane = lin & 31;
    int src = lane ^ lane_mask;
    if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane; /* outside the segment: own value */
    return sd_cpu::shfl_from(var, lin - lane + src);
}


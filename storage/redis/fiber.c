/* storage/redis/fiber.c -- request tasks on stacks of their own, parked while Redis answers.
 *
 * A handler reads like straight-line code: build a batch, run it, read the replies. Run on
 * an HTTP thread, that held the thread in read() for every round trip, and only as many
 * requests as threads had a command out at once. Run as a fiber, the same code parks at the
 * batch instead: the fiber's commands go out on the shared connections (mux.c), the thread
 * goes back to its other connections, and the owner of the fiber runs it on again once the
 * replies are in. A fiber always runs on the thread that made it, so nothing thread-local
 * changes under it.
 *
 * The switches are Boost.Context's fcontext (Debian's libboost-context, a C ABI: two
 * functions, declared below since its header is C++). It had been glibc's ucontext, whose
 * swapcontext saves and restores the signal mask: a rt_sigprocmask system call on every
 * switch, 8 per request (strace), on a machine where a system call is the dearest thing a
 * request does. fcontext keeps the registers the ABI asks a callee to keep and nothing else.
 * The sanitizers are told about each switch (or ASan loses track of the stack and
 * ThreadSanitizer of the happens-before).
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_STACK */
#include "storage/redis/redis_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Boost.Context 1.74's fcontext (boost/context/detail/fcontext.hpp, extern "C"): a context is
 * an opaque stack pointer; jumping to one passes data and returns, when something jumps back,
 * the context that did and what it passed. */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} fcontext_transfer_t;
extern fcontext_transfer_t jump_fcontext(fcontext_t const to, void *data);
extern fcontext_t make_fcontext(void *stack_top, size_t size, void (*fn)(fcontext_transfer_t));

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FIBER_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define FIBER_TSAN 1
#endif
#endif
#ifdef FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* jansson parses nested documents recursively (to depth 2048), so a request's stack must hold
 * far more than its handler's own frames; untouched pages cost no memory. */
#define FIBER_STACK (256 * 1024)
#define STACKS_KEPT 32 /* per thread, for the next fibers */

struct storage_redis_fiber_s {
    fcontext_t ctx;    /* where the fiber goes on */
    fcontext_t caller; /* where it returns to when it parks or ends */
    char *stack;       /* FIBER_STACK bytes above a guard page */
    void (*fn)(void *);
    void *fn_arg;
    void (*wake)(void *);
    void *wake_arg;
    bool done, cancelled;
    /* what the parked fiber waits for, sent by storage_redis_fiber_send() */
    void (*send)(void *);
    void *send_arg;
    atomic_bool woken;
    storage_redis_gate_t *gate; /* the task's armed gate (gate.c) */
#ifdef FIBER_ASAN
    void *fake_stack;
    const void *caller_bottom;
    size_t caller_size;
#endif
#ifdef FIBER_TSAN
    void *tsan_self, *tsan_caller;
#endif
};

static _Thread_local storage_redis_fiber_t *current;
static _Thread_local char *kept[STACKS_KEPT];
static _Thread_local int n_kept;

static size_t page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static char *stack_take(void)
{
    if (n_kept) {
#ifdef FIBER_ASAN
        /* The last fiber's frames never returned: their redzones are still poisoned. */
        __asan_unpoison_memory_region(kept[n_kept - 1], FIBER_STACK);
#endif
        return kept[--n_kept];
    }
    size_t guard = page_size();
    char *m = mmap(NULL, FIBER_STACK + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    mprotect(m, guard, PROT_NONE); /* an overflow faults instead of writing over a neighbour */
    return m + guard;
}

static void stack_give(char *stack)
{
    if (n_kept < STACKS_KEPT) {
        kept[n_kept++] = stack;
        return;
    }
    size_t guard = page_size();
    munmap(stack - guard, FIBER_STACK + guard);
}

/* ---- the switches, each told to the sanitizers ------------------------------------------- */

static void into_fiber(storage_redis_fiber_t *f)
{
#ifdef FIBER_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack, FIBER_STACK);
#endif
#ifdef FIBER_TSAN
    f->tsan_caller = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(f->tsan_self, 0);
#endif
    f->ctx = jump_fcontext(f->ctx, f).fctx; /* back when it parks or ends */
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void out_of_fiber(storage_redis_fiber_t *f)
{
#ifdef FIBER_ASAN
    /* A finished fiber's fake stack frames are dropped (NULL), a parked one's kept. */
    __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack, f->caller_bottom,
                                   f->caller_size);
#endif
#ifdef FIBER_TSAN
    __tsan_switch_to_fiber(f->tsan_caller, 0);
#endif
    f->caller = jump_fcontext(f->caller, NULL).fctx; /* back when it is run on */
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &f->caller_bottom, &f->caller_size);
#endif
}

static void entry(fcontext_transfer_t from)
{
    storage_redis_fiber_t *f = from.data;
    f->caller = from.fctx;
#ifdef FIBER_ASAN
    __sanitizer_finish_switch_fiber(NULL, &f->caller_bottom, &f->caller_size);
#endif
    f->fn(f->fn_arg);
    f->done = true;
    out_of_fiber(f); /* never comes back */
    abort();
}

/* ---- the owner's side --------------------------------------------------------------------- */

storage_redis_fiber_t *storage_redis_fiber_new(void (*fn)(void *), void *fn_arg,
                                               void (*wake)(void *), void *wake_arg)
{
    storage_redis_fiber_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->stack = stack_take();
    if (!f->stack) {
        free(f);
        return NULL;
    }
    f->ctx = make_fcontext(f->stack + FIBER_STACK, FIBER_STACK, entry);
    f->fn = fn;
    f->fn_arg = fn_arg;
    f->wake = wake;
    f->wake_arg = wake_arg;
    atomic_init(&f->woken, false);
#ifdef FIBER_TSAN
    f->tsan_self = __tsan_create_fiber(0);
#endif
    return f;
}

bool storage_redis_fiber_run(storage_redis_fiber_t *f)
{
    if (f->done)
        return true;
    /* Pairs with the release in storage_redis__fiber_wake: the replies written on the I/O
     * thread are visible to the fiber. */
    atomic_load_explicit(&f->woken, memory_order_acquire);
    storage_redis_fiber_t *was = current;
    current = f;
    into_fiber(f);
    current = was;
    return f->done;
}

void storage_redis_fiber_send(storage_redis_fiber_t *f)
{
    void (*send)(void *) = f->send;
    f->send = NULL;
    atomic_store_explicit(&f->woken, false, memory_order_relaxed);
    if (send)
        send(f->send_arg);
}

void storage_redis_fiber_cancel(storage_redis_fiber_t *f)
{
    f->cancelled = true;
}

void storage_redis_fiber_free(storage_redis_fiber_t *f)
{
    if (!f)
        return;
#ifdef FIBER_TSAN
    __tsan_destroy_fiber(f->tsan_self);
#endif
    stack_give(f->stack);
    free(f);
}

/* ---- the fiber's side (batch.c, gate.c, mux.c) -------------------------------------------- */

storage_redis_fiber_t *storage_redis__fiber_current(void)
{
    return current;
}

bool storage_redis__fiber_cancelled(void)
{
    return current && current->cancelled;
}

void storage_redis__fiber_park(void (*send)(void *), void *send_arg)
{
    storage_redis_fiber_t *f = current;
    f->send = send;
    f->send_arg = send_arg;
    out_of_fiber(f);
}

void storage_redis__fiber_wake(storage_redis_fiber_t *f)
{
    atomic_store_explicit(&f->woken, true, memory_order_release);
    f->wake(f->wake_arg);
}

storage_redis_gate_t **storage_redis__fiber_gate(storage_redis_fiber_t *f)
{
    return &f->gate;
}

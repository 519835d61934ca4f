/*
 * codegen._runtime -- the fast call path for JIT-compiled symdiff kernels.
 *
 * A compiled graph is one function   void entry(void **args, void *pool)
 * where args = data pointers of all inputs, then all outputs (C-contiguous,
 * aligned, native byte order; inputs are never written), then -- only when
 * the Kernel has workspace_bytes set -- a scratch workspace pointer, and pool
 * is an sd_pool* or NULL.  Kernel.__call__ validates/unboxes the inputs in C,
 * allocates fresh outputs, releases the GIL around entry() and returns them.
 *
 * Types / functions (see the docstrings below for the exact signatures):
 *   Pool(nthreads=0)                      owns one sd_pool (0 = default count)
 *   Kernel(entry, pool, inputs, outputs, *, name="kernel", returns="tuple",
 *          release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None)
 *   symbol_addresses() -> dict[str, int]  for llvmlite.binding.add_symbol
 *   default_num_threads() -> int
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#ifndef NPY_NO_DEPRECATED_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#endif
#include <numpy/arrayobject.h>

#include "sd_pool.h"

/* Built against numpy >= 2 headers (pyproject build requirement). */

typedef void (*sd_entry_fn)(void **args, void *pool);

#define SD_SMALL_ARGS 32 /* args/temps live on the C stack up to this many */

/* ======================================================================= Pool */

typedef struct {
    PyObject_HEAD
    sd_pool *pool;       /* NULL once closed */
    int nthreads;
    Py_ssize_t active;   /* Kernel calls in flight (GIL-protected counter) */
    PyObject *weakreflist;
} PoolObject;

static PyTypeObject PoolType;

static PyObject *Pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"nthreads", NULL};
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:Pool", kwlist, &nthreads))
        return NULL;
    if (nthreads < 0) {
        PyErr_Format(PyExc_ValueError, "Pool: nthreads must be >= 0 (0 = default), got %d", nthreads);
        return NULL;
    }
    PoolObject *self = (PoolObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    sd_pool *p;
    Py_BEGIN_ALLOW_THREADS
    p = sd_pool_create(nthreads);
    Py_END_ALLOW_THREADS
    if (!p) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->pool = p;
    self->nthreads = sd_pool_num_threads(p);
    self->active = 0;
    return (PyObject *)self;
}

static void Pool_destroy_now(PoolObject *self) {
    sd_pool *p = self->pool;
    self->pool = NULL;
    if (p) {
        Py_BEGIN_ALLOW_THREADS
        sd_pool_destroy(p);
        Py_END_ALLOW_THREADS
    }
}

static void Pool_dealloc(PoolObject *self) {
    if (self->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)self);
    Pool_destroy_now(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Pool_close(PoolObject *self, PyObject *Py_UNUSED(ignored)) {
    if (self->active > 0) {
        PyErr_SetString(PyExc_RuntimeError, "Pool.close(): kernel calls using this pool are in flight");
        return NULL;
    }
    Pool_destroy_now(self);
    Py_RETURN_NONE;
}

static PyObject *Pool_enter(PoolObject *self, PyObject *Py_UNUSED(ignored)) {
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Pool_exit(PoolObject *self, PyObject *Py_UNUSED(args)) {
    return Pool_close(self, NULL);
}

static PyObject *Pool_set_spin_us(PoolObject *self, PyObject *arg) {
    long us = PyLong_AsLong(arg);
    if (us == -1 && PyErr_Occurred())
        return NULL;
    if (self->pool)
        sd_pool_set_spin_us(self->pool, us < 0 ? 0 : (us > 1000000 ? 1000000 : (int)us));
    Py_RETURN_NONE;
}

static PyObject *Pool_parallel_for(PoolObject *self, PyObject *args) {
    PyObject *fn_o, *ctx_o;
    long long n;
    if (!PyArg_ParseTuple(args, "OOL:parallel_for", &fn_o, &ctx_o, &n))
        return NULL;
    void *fn = PyLong_AsVoidPtr(fn_o);
    if (!fn) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "parallel_for: fn address is 0");
        return NULL;
    }
    void *ctx = ctx_o == Py_None ? NULL : PyLong_AsVoidPtr(ctx_o);
    if (!ctx && PyErr_Occurred())
        return NULL;
    sd_pool *p = self->pool;
    sd_task_fn f;
    memcpy(&f, &fn, sizeof f);
    self->active++;
    Py_BEGIN_ALLOW_THREADS
    sd_parallel_for(p, f, ctx, (int64_t)n);
    Py_END_ALLOW_THREADS
    self->active--;
    Py_RETURN_NONE;
}

static PyObject *Pool_get_nthreads(PoolObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLong(self->nthreads);
}
static PyObject *Pool_get_address(PoolObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromVoidPtr(self->pool);
}
static PyObject *Pool_get_closed(PoolObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->pool == NULL);
}

static PyObject *Pool_repr(PoolObject *self) {
    return PyUnicode_FromFormat("<codegen._runtime.Pool nthreads=%d%s>", self->nthreads,
                                self->pool ? "" : " closed");
}

static PyMethodDef Pool_methods[] = {
    {"close", (PyCFunction)Pool_close, METH_NOARGS,
     "close()\n--\n\nStop and join the worker threads now (kernels holding the pool then run "
     "serially).  Raises RuntimeError while a call using the pool is in flight."},
    {"parallel_for", (PyCFunction)Pool_parallel_for, METH_VARARGS,
     "parallel_for(fn_addr, ctx_addr, n)\n--\n\nsd_parallel_for(pool, fn, ctx, n) with the GIL "
     "released; fn_addr is the address of a C function void fn(void *ctx, int64_t begin, "
     "int64_t end), ctx_addr an int address or None."},
    {"set_spin_us", (PyCFunction)Pool_set_spin_us, METH_O,
     "set_spin_us(us)\n--\n\nHow long idle threads spin before sleeping (default 50 us)."},
    {"__enter__", (PyCFunction)Pool_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Pool_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pool_getset[] = {
    {"nthreads", (getter)Pool_get_nthreads, NULL, "total threads (workers + the caller)", NULL},
    {"address", (getter)Pool_get_address, NULL, "the sd_pool* as an int (0 once closed)", NULL},
    {"closed", (getter)Pool_get_closed, NULL, "True after close()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "codegen._runtime.Pool",
    .tp_basicsize = sizeof(PoolObject),
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_repr = (reprfunc)Pool_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Pool(nthreads=0)\n--\n\nA symdiff thread pool (sd_pool) with nthreads threads in "
              "all, the calling thread included; 0 = $SYMDIFF_NUM_THREADS or the CPUs this "
              "process may use.  Destroyed (workers joined) when collected or by close().",
    .tp_weaklistoffset = offsetof(PoolObject, weakreflist),
    .tp_methods = Pool_methods,
    .tp_getset = Pool_getset,
    .tp_new = Pool_new,
};

/* ===================================================================== specs */

enum { KIND_FLOAT = 0, KIND_INT = 1, KIND_BOOL = 2, KIND_COMPLEX = 3 };

typedef struct {
    PyObject *name;          /* interned str */
    Py_hash_t hash;          /* hash(name), for keyword matching of non-interned names */
    PyObject *shape_tuple;   /* normalised shape, for messages and introspection */
    PyArray_Descr *descr;    /* native byte order */
    PyObject *range_obj;     /* None or (lo, hi) */
    npy_intp *shape;         /* ndim entries */
    npy_intp size;
    int ndim;
    int type_num;
    int kind;
    int has_range;
    long long lo, hi;        /* allowed values [lo, hi] (inclusive) for integer inputs */
} spec_t;

static void spec_clear(spec_t *s) {
    Py_CLEAR(s->name);
    Py_CLEAR(s->shape_tuple);
    Py_CLEAR(s->descr);
    Py_CLEAR(s->range_obj);
    PyMem_Free(s->shape);
    s->shape = NULL;
}

/* integer limits of a dtype, clipped to long long */
static void int_limits(const PyArray_Descr *d, long long *lo, long long *hi) {
    const int sz = (int)PyDataType_ELSIZE(d);
    if (d->kind == 'u') {
        *lo = 0;
        *hi = sz >= 8 ? LLONG_MAX : (long long)((1ULL << (8 * sz)) - 1);
    } else {
        *lo = sz >= 8 ? LLONG_MIN : -(1LL << (8 * sz - 1));
        *hi = sz >= 8 ? LLONG_MAX : (1LL << (8 * sz - 1)) - 1;
    }
}

/* (name, shape, dtype[, label_range]) -> spec.  what = "input" / "output". */
static int spec_parse(PyObject *item, spec_t *s, const char *what, Py_ssize_t idx) {
    memset(s, 0, sizeof *s);
    if (!PyTuple_Check(item) && !PyList_Check(item)) {
        PyErr_Format(PyExc_TypeError, "%s spec #%zd must be a tuple (name, shape, dtype%s), got %R",
                     what, idx, what[0] == 'i' ? "[, label_range]" : "", item);
        return -1;
    }
    PyObject *seq = PySequence_Tuple(item);
    if (!seq)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    const int max_items = what[0] == 'i' ? 4 : 3;
    if (n < 3 || n > max_items) {
        PyErr_Format(PyExc_TypeError, "%s spec #%zd must be (name, shape, dtype%s), got %R", what,
                     idx, what[0] == 'i' ? "[, label_range]" : "", item);
        goto fail;
    }
    PyObject *name = PyTuple_GET_ITEM(seq, 0);
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%s spec #%zd: name must be a str, got %R", what, idx, name);
        goto fail;
    }
    Py_INCREF(name);
    PyUnicode_InternInPlace(&name);
    s->name = name;
    s->hash = PyObject_Hash(name);
    if (s->hash == -1)
        goto fail;

    /* shape */
    PyObject *shape = PyTuple_GET_ITEM(seq, 1);
    PyObject *shape_seq = PySequence_Tuple(shape);
    if (!shape_seq) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s '%U': shape must be a tuple of ints, got %R", what, name,
                     shape);
        goto fail;
    }
    s->ndim = (int)PyTuple_GET_SIZE(shape_seq);
    if (s->ndim > NPY_MAXDIMS) {
        Py_DECREF(shape_seq);
        PyErr_Format(PyExc_ValueError, "%s '%U': too many dimensions (%d)", what, name, s->ndim);
        goto fail;
    }
    s->shape = PyMem_Malloc(sizeof(npy_intp) * (size_t)(s->ndim ? s->ndim : 1));
    s->shape_tuple = PyTuple_New(s->ndim);
    if (!s->shape || !s->shape_tuple) {
        Py_DECREF(shape_seq);
        PyErr_NoMemory();
        goto fail;
    }
    s->size = 1;
    for (int d = 0; d < s->ndim; d++) {
        PyObject *dim = PyTuple_GET_ITEM(shape_seq, d);
        Py_ssize_t v = -1;
        if (PyIndex_Check(dim) && !PyBool_Check(dim)) {
            v = PyNumber_AsSsize_t(dim, PyExc_OverflowError);
            if (v == -1 && PyErr_Occurred())
                PyErr_Clear();
        }
        if (v < 0) {
            Py_DECREF(shape_seq);
            PyErr_Format(PyExc_ValueError,
                         "%s '%U': shape must be a tuple of non-negative ints, got %R", what, name,
                         shape);
            goto fail;
        }
        s->shape[d] = (npy_intp)v;
        s->size *= (npy_intp)v;
        PyTuple_SET_ITEM(s->shape_tuple, d, PyLong_FromSsize_t(v));
    }
    Py_DECREF(shape_seq);

    /* dtype */
    PyObject *dt = PyTuple_GET_ITEM(seq, 2);
    PyArray_Descr *descr = NULL;
    if (PyLong_Check(dt)) {
        int num = (int)PyLong_AsLong(dt);
        descr = (num >= 0 && num < NPY_NTYPES_LEGACY) ? PyArray_DescrFromType(num) : NULL;
        if (!descr) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s '%U': unknown dtype number %R", what, name, dt);
            goto fail;
        }
    } else if (!PyArray_DescrConverter(dt, &descr)) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s '%U': not a numpy dtype: %R", what, name, dt);
        goto fail;
    }
    if (!PyArray_ISNBO(descr->byteorder)) {
        PyArray_Descr *nd = PyArray_DescrNewByteorder(descr, NPY_NATIVE);
        Py_DECREF(descr);
        if (!nd)
            goto fail;
        descr = nd;
    }
    s->descr = descr;
    s->type_num = descr->type_num;
    switch (descr->kind) {
    case 'f': s->kind = KIND_FLOAT; break;
    case 'i':
    case 'u': s->kind = KIND_INT; break;
    case 'b': s->kind = KIND_BOOL; break;
    case 'c':
        if (what[0] == 'o') {
            s->kind = KIND_COMPLEX;
            break;
        }
        /* fall through */
    default:
        PyErr_Format(PyExc_TypeError, "%s '%U': unsupported dtype %S (expected a float, integer%s "
                     "or bool dtype)", what, name, (PyObject *)descr,
                     what[0] == 'o' ? ", complex" : "");
        goto fail;
    }

    /* label range */
    Py_INCREF(Py_None);
    s->range_obj = Py_None;
    if (n == 4 && PyTuple_GET_ITEM(seq, 3) != Py_None) {
        PyObject *r = PyTuple_GET_ITEM(seq, 3);
        long long lo = 0, hi = 0;
        if (s->kind != KIND_INT) {
            PyErr_Format(PyExc_TypeError, "input '%U': a label range needs an integer dtype, not %S",
                         name, (PyObject *)descr);
            goto fail;
        }
        if (PyLong_Check(r) && !PyBool_Check(r)) {
            hi = PyLong_AsLongLong(r);
        } else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2 &&
                   PyLong_Check(PyTuple_GET_ITEM(r, 0)) && PyLong_Check(PyTuple_GET_ITEM(r, 1))) {
            lo = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 0));
            if (!PyErr_Occurred())
                hi = PyLong_AsLongLong(PyTuple_GET_ITEM(r, 1));
        } else {
            PyErr_Format(PyExc_TypeError, "input '%U': label_range must be an int C (values in "
                         "[0, C)) or a (lo, hi) tuple, got %R", name, r);
            goto fail;
        }
        if (PyErr_Occurred())
            goto fail;
        long long tlo, thi;
        int_limits(descr, &tlo, &thi);
        if (hi <= lo || lo < tlo || hi - 1 > thi) {
            PyErr_Format(PyExc_ValueError, "input '%U': label range [%lld, %lld) is empty or does "
                         "not fit in %S", name, lo, hi, (PyObject *)descr);
            goto fail;
        }
        s->has_range = 1;
        s->lo = lo;
        s->hi = hi - 1;
        Py_DECREF(Py_None);
        s->range_obj = Py_BuildValue("(LL)", lo, hi);
        if (!s->range_obj)
            goto fail;
    } else if (s->kind == KIND_INT) {
        int_limits(descr, &s->lo, &s->hi);
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    spec_clear(s);
    return -1;
}

/* ==================================================================== Kernel */

enum { RET_TUPLE = 0, RET_SINGLE = 1, RET_DICT = 2 };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    sd_entry_fn entry;
    PyObject *pool_obj;      /* a Pool, or NULL */
    void *pool_raw;          /* raw sd_pool* when an int address was given */
    Py_ssize_t n_in, n_out;
    spec_t *in, *out;
    PyObject *name;          /* str, for messages */
    PyObject *input_names;   /* tuple of str */
    PyObject *output_names;  /* tuple of str */
    PyObject *owner;         /* kept alive (e.g. the JIT module owning entry) */
    int returns;
    int release_gil;
    int zero_outputs;
    int has_ws;              /* args carry a workspace pointer after the outputs */
    size_t ws_bytes;         /* its size (0 -> NULL pointer) */
    void *ws_raw;            /* cached workspace (malloc'd block; aligned view below) */
    void *ws;
    int ws_busy;             /* a call is using the cached workspace (GIL-protected) */
    PyObject *weakreflist;
} KernelObject;

#define SD_WS_ALIGN 64

/* A workspace of n bytes aligned to SD_WS_ALIGN; *raw is what to free. */
static void *ws_alloc(size_t n, void **raw) {
    *raw = PyMem_RawMalloc(n + SD_WS_ALIGN);
    if (!*raw)
        return NULL;
    return (void *)(((uintptr_t)*raw + SD_WS_ALIGN - 1) & ~(uintptr_t)(SD_WS_ALIGN - 1));
}

static PyTypeObject KernelType;

/* -------------------------------------------------------------- errors */

static PyObject *dims_tuple(PyArrayObject *a) {
    int nd = PyArray_NDIM(a);
    PyObject *t = PyTuple_New(nd);
    if (!t)
        return NULL;
    for (int d = 0; d < nd; d++)
        PyTuple_SET_ITEM(t, d, PyLong_FromSsize_t(PyArray_DIM(a, d)));
    return t;
}

/* Replace the current exception by exc_type("<kernel>(): input '<name>': <what>: <old
 * message>"), with the old exception as __cause__. */
static void reraise_with_prefix(PyObject *exc_type, KernelObject *k, const spec_t *s,
                                const char *what) {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *old = PyErr_GetRaisedException();
    PyErr_Format(exc_type, "%U(): input '%U': %s: %S", k->name, s->name, what,
                 old ? old : Py_None);
    if (old) {
        PyObject *exc = PyErr_GetRaisedException();
        Py_INCREF(old);
        PyException_SetContext(exc, old); /* steals */
        PyException_SetCause(exc, old);   /* steals */
        PyErr_SetRaisedException(exc);
    }
#else
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyErr_NormalizeException(&et, &ev, &tb);
    if (tb && ev)
        PyException_SetTraceback(ev, tb);
    Py_XDECREF(et);
    Py_XDECREF(tb);
    PyErr_Format(exc_type, "%U(): input '%U': %s: %S", k->name, s->name, what, ev ? ev : Py_None);
    if (ev) {
        PyObject *ne, *nv, *ntb;
        PyErr_Fetch(&ne, &nv, &ntb);
        PyErr_NormalizeException(&ne, &nv, &ntb);
        Py_INCREF(ev);
        PyException_SetContext(nv, ev); /* steals */
        PyException_SetCause(nv, ev);   /* steals */
        PyErr_Restore(ne, nv, ntb);
    }
#endif
}

static const char *kind_word(int kind) {
    switch (kind) {
    case KIND_FLOAT: return "floating-point";
    case KIND_INT: return "integer";
    case KIND_BOOL: return "bool";
    default: return "complex";
    }
}

/* ---------------------------------------------------- integer range check */

/* Returns 1 and fills *bad_i / *bad_v if an element is outside [lo, hi]. */
#define SD_RANGE_LOOP(T, UNSIGNED64)                                                  \
    do {                                                                              \
        const T *p = (const T *)data;                                                 \
        for (npy_intp i = 0; i < n; i++) {                                            \
            if (UNSIGNED64 && (unsigned long long)p[i] > (unsigned long long)LLONG_MAX) { \
                *bad_i = i;                                                           \
                *bad_u = (unsigned long long)p[i];                                    \
                *is_u = 1;                                                            \
                return 1;                                                             \
            }                                                                         \
            const long long v = (long long)p[i];                                      \
            if ((unsigned long long)v - (unsigned long long)lo > span) {              \
                *bad_i = i;                                                           \
                *bad_v = v;                                                           \
                return 1;                                                             \
            }                                                                         \
        }                                                                             \
        return 0;                                                                     \
    } while (0)

static int find_out_of_range(const void *data, char kind, int elsize, npy_intp n, long long lo,
                             long long hi, npy_intp *bad_i, long long *bad_v,
                             unsigned long long *bad_u, int *is_u) {
    const unsigned long long span = (unsigned long long)hi - (unsigned long long)lo;
    *is_u = 0;
    if (kind == 'u') {
        switch (elsize) {
        case 1: SD_RANGE_LOOP(npy_uint8, 0);
        case 2: SD_RANGE_LOOP(npy_uint16, 0);
        case 4: SD_RANGE_LOOP(npy_uint32, 0);
        default: SD_RANGE_LOOP(npy_uint64, 1);
        }
    } else {
        switch (elsize) {
        case 1: SD_RANGE_LOOP(npy_int8, 0);
        case 2: SD_RANGE_LOOP(npy_int16, 0);
        case 4: SD_RANGE_LOOP(npy_int32, 0);
        default: SD_RANGE_LOOP(npy_int64, 0);
        }
    }
}
#undef SD_RANGE_LOOP

/* a: native, aligned, C-contiguous integer array.  0 ok, -1 error set. */
static int check_int_values(KernelObject *k, const spec_t *s, PyArrayObject *a) {
    npy_intp bad_i;
    long long bad_v = 0;
    unsigned long long bad_u = 0;
    int is_u;
    PyArray_Descr *d = PyArray_DESCR(a);
    if (!find_out_of_range(PyArray_DATA(a), d->kind, (int)PyDataType_ELSIZE(d), PyArray_SIZE(a),
                           s->lo, s->hi, &bad_i, &bad_v, &bad_u, &is_u))
        return 0;
    char val[32];
    if (is_u)
        PyOS_snprintf(val, sizeof val, "%llu", bad_u);
    else
        PyOS_snprintf(val, sizeof val, "%lld", bad_v);
    if (s->has_range)
        PyErr_Format(PyExc_ValueError,
                     "%U(): input '%U': label value %s at flat index %zd is out of range "
                     "[%lld, %lld)", k->name, s->name, val, (Py_ssize_t)bad_i, s->lo, s->hi + 1);
    else
        PyErr_Format(PyExc_ValueError,
                     "%U(): input '%U': value %s at flat index %zd does not fit in %S", k->name,
                     s->name, val, (Py_ssize_t)bad_i, (PyObject *)s->descr);
    return -1;
}

/* ---------------------------------------------------------- input paths */

static inline int shape_matches(const spec_t *s, PyArrayObject *a) {
    if (PyArray_NDIM(a) != s->ndim)
        return 0;
    const npy_intp *d = PyArray_DIMS(a);
    for (int i = 0; i < s->ndim; i++)
        if (d[i] != s->shape[i])
            return 0;
    return 1;
}

#define SD_CARRAY_FLAGS (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED)

/* Everything the fast path rejects: conversion, casts, copies, diagnostics.
 * On success *ptr is the data pointer and *tmp a new reference to keep alive
 * (or NULL).  Returns -1 with an exception set on error. */
static int input_slow(KernelObject *k, const spec_t *s, PyObject *o, void **ptr, PyObject **tmp) {
    PyObject *owned = NULL; /* the array version of o, if we made one */
    PyArrayObject *a;
    *tmp = NULL;
    if (o == Py_None) {
        PyErr_Format(PyExc_TypeError, "%U(): input '%U' is None; expected a %S array of shape %R",
                     k->name, s->name, (PyObject *)s->descr, s->shape_tuple);
        return -1;
    }
    if (PyArray_Check(o)) {
        a = (PyArrayObject *)o;
    } else {
        owned = PyArray_FromAny(o, NULL, 0, 0, 0, NULL);
        if (!owned) {
            reraise_with_prefix(PyExc_TypeError, k, s, "cannot convert to an array");
            return -1;
        }
        a = (PyArrayObject *)owned;
    }

    PyArray_Descr *d = PyArray_DESCR(a);
    const char kind = d->kind;
    int ok;
    switch (s->kind) {
    case KIND_FLOAT: ok = kind == 'f' || kind == 'i' || kind == 'u'; break; /* not bool (as numpy's Signature) */
    case KIND_INT: ok = kind == 'i' || kind == 'u'; break;
    default: ok = kind == 'b'; break;
    }
    if (!ok) {
        const char *why = "";
        if (kind == 'c')
            why = " (complex values are not supported; pass .real explicitly)";
        else if (kind == 'O')
            why = " (object array: contains None or non-numeric values?)";
        else if (kind == 'U' || kind == 'S')
            why = " (strings are not numbers)";
        else if (s->kind == KIND_INT && kind == 'f')
            why = " (labels must be integers; convert with .astype(np.int64) if intended)";
        else if (s->kind == KIND_INT && kind == 'b')
            why = " (bool is not accepted for integer inputs)";
        else if (s->kind == KIND_FLOAT && kind == 'b')
            why = " (bool is not accepted for float inputs; convert with .astype explicitly if intended)";
        PyErr_Format(PyExc_TypeError, "%U(): input '%U': expected %s data (%S), got dtype %S%s",
                     k->name, s->name, kind_word(s->kind), (PyObject *)s->descr, (PyObject *)d, why);
        goto fail;
    }
    if (!shape_matches(s, a)) {
        PyObject *got = dims_tuple(a);
        if (got) {
            PyErr_Format(PyExc_ValueError, "%U(): input '%U': expected shape %R, got %R", k->name,
                         s->name, s->shape_tuple, got);
            Py_DECREF(got);
        }
        goto fail;
    }

    const int same_type = PyArray_EquivTypes(d, s->descr);
    PyArrayObject *res; /* the array whose data we pass; a new reference */
    if (same_type) {
        if ((PyArray_FLAGS(a) & SD_CARRAY_FLAGS) == SD_CARRAY_FLAGS) {
            Py_INCREF(a);
            res = a;
        } else {
            Py_INCREF(s->descr);
            res = (PyArrayObject *)PyArray_FromArray(a, s->descr, NPY_ARRAY_CARRAY_RO);
            if (!res)
                goto fail;
        }
        if (s->kind == KIND_INT && s->has_range && check_int_values(k, s, res) < 0) {
            Py_DECREF(res);
            goto fail;
        }
    } else if (s->kind == KIND_INT) {
        /* integer -> integer: check the values in the source type, then cast */
        PyArrayObject *src;
        if ((PyArray_FLAGS(a) & SD_CARRAY_FLAGS) == SD_CARRAY_FLAGS && PyArray_ISNBO(d->byteorder)) {
            Py_INCREF(a);
            src = a;
        } else {
            PyArray_Descr *nd = PyArray_DescrNewByteorder(d, NPY_NATIVE);
            if (!nd)
                goto fail;
            src = (PyArrayObject *)PyArray_FromArray(a, nd, NPY_ARRAY_CARRAY_RO);
            if (!src)
                goto fail;
        }
        if (check_int_values(k, s, src) < 0) {
            Py_DECREF(src);
            goto fail;
        }
        Py_INCREF(s->descr);
        res = (PyArrayObject *)PyArray_FromArray(src, s->descr,
                                                 NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        Py_DECREF(src);
        if (!res)
            goto fail;
    } else {
        /* float input from float/int data (same-kind or safe casts only) */
        Py_INCREF(s->descr);
        res = (PyArrayObject *)PyArray_FromArray(a, s->descr,
                                                 NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
        if (!res)
            goto fail;
    }
    Py_XDECREF(owned);
    *ptr = PyArray_DATA(res);
    *tmp = (PyObject *)res;
    return 0;
fail:
    Py_XDECREF(owned);
    return -1;
}

/* ------------------------------------------------------------ the call */

static void release_temps(PyObject **tmps, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(tmps[i]);
}

static PyObject *Kernel_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    KernelObject *k = (KernelObject *)self;
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    const Py_ssize_t n_in = k->n_in, n_out = k->n_out, n_all = n_in + n_out + k->has_ws;

    PyObject *argv_small[SD_SMALL_ARGS];
    PyObject *tmps_small[SD_SMALL_ARGS];
    void *ptrs_small[SD_SMALL_ARGS];
    PyObject **argv_buf = argv_small, **tmps = tmps_small;
    void **ptrs = ptrs_small;
    PyObject *const *argv = args;
    PyObject *result = NULL;
    Py_ssize_t i = 0, j = 0;

    if (n_all > SD_SMALL_ARGS) {
        argv_buf = PyMem_Malloc(sizeof(PyObject *) * (size_t)n_all * 2);
        ptrs = PyMem_Malloc(sizeof(void *) * (size_t)n_all);
        if (!argv_buf || !ptrs) {
            PyMem_Free(argv_buf);
            PyMem_Free(ptrs);
            return PyErr_NoMemory();
        }
        tmps = argv_buf + n_all;
    }

    /* ---- bind arguments */
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw == 0) {
        if (nargs != n_in) {
            PyErr_Format(PyExc_TypeError, "%U() takes %zd input%s %R but %zd %s given", k->name,
                         n_in, n_in == 1 ? "" : "s", k->input_names, nargs,
                         nargs == 1 ? "was" : "were");
            goto done_noargs;
        }
    } else {
        if (nargs > n_in) {
            PyErr_Format(PyExc_TypeError, "%U() takes %zd input%s %R but %zd positional were given",
                         k->name, n_in, n_in == 1 ? "" : "s", k->input_names, nargs);
            goto done_noargs;
        }
        for (i = 0; i < n_in; i++)
            argv_buf[i] = i < nargs ? args[i] : NULL;
        for (Py_ssize_t kw = 0; kw < nkw; kw++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, kw);
            Py_ssize_t idx = nargs + kw; /* names usually come in spec order */
            if (idx >= n_in || k->in[idx].name != key) {
                idx = -1;
                for (i = 0; i < n_in; i++)
                    if (k->in[i].name == key) { /* interned: identity */
                        idx = i;
                        break;
                    }
            }
            if (idx < 0) {
                const Py_hash_t h = PyObject_Hash(key); /* cached in str objects */
                for (i = 0; i < n_in; i++)
                    if (k->in[i].hash == h && PyUnicode_Compare(k->in[i].name, key) == 0) {
                        idx = i;
                        break;
                    }
            }
            if (idx < 0) {
                PyErr_Format(PyExc_TypeError, "%U() got an unexpected input %R (inputs: %R)",
                             k->name, key, k->input_names);
                goto done_noargs;
            }
            if (argv_buf[idx]) {
                PyErr_Format(PyExc_TypeError, "%U() got multiple values for input %R", k->name, key);
                goto done_noargs;
            }
            argv_buf[idx] = args[nargs + kw];
        }
        for (i = 0; i < n_in; i++)
            if (!argv_buf[i]) {
                PyErr_Format(PyExc_TypeError, "%U() missing input %R", k->name, k->in[i].name);
                goto done_noargs;
            }
        argv = argv_buf;
    }

    /* ---- inputs */
    for (i = 0; i < n_in; i++) {
        const spec_t *s = &k->in[i];
        PyObject *o = argv[i];
        tmps[i] = NULL;
        if (Py_TYPE(o) == &PyArray_Type) {
            PyArrayObject *a = (PyArrayObject *)o;
            if (PyArray_TYPE(a) == s->type_num && shape_matches(s, a) &&
                (PyArray_FLAGS(a) & SD_CARRAY_FLAGS) == SD_CARRAY_FLAGS &&
                PyArray_ISNOTSWAPPED(a)) {
                if (s->has_range && check_int_values(k, s, a) < 0)
                    goto fail_inputs;
                ptrs[i] = PyArray_DATA(a);
                continue;
            }
        }
        if (input_slow(k, s, o, &ptrs[i], &tmps[i]) < 0)
            goto fail_inputs;
    }

    /* ---- outputs */
    result = PyTuple_New(n_out);
    if (!result)
        goto fail_inputs;
    for (j = 0; j < n_out; j++) {
        const spec_t *s = &k->out[j];
        Py_INCREF(s->descr);
        PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, s->descr, s->ndim, s->shape, NULL,
                                             NULL, 0, NULL);
        if (!arr) {
            Py_CLEAR(result);
            goto fail_inputs;
        }
        if (k->zero_outputs && s->size > 0)
            memset(PyArray_DATA((PyArrayObject *)arr), 0,
                   (size_t)s->size * (size_t)PyDataType_ELSIZE(s->descr));
        ptrs[n_in + j] = PyArray_DATA((PyArrayObject *)arr);
        PyTuple_SET_ITEM(result, j, arr);
    }

    /* ---- workspace: the kernel's cached block, or a private one if that is in use */
    void *ws_tmp_raw = NULL;
    int ws_owned = 0;
    if (k->has_ws) {
        void *ws = NULL;
        if (k->ws_bytes > 0) {
            if (!k->ws_busy) {
                if (!k->ws)
                    k->ws = ws_alloc(k->ws_bytes, &k->ws_raw);
                ws = k->ws;
                ws_owned = 1;
            } else {
                ws = ws_alloc(k->ws_bytes, &ws_tmp_raw);
            }
            if (!ws) {
                PyErr_NoMemory();
                Py_CLEAR(result);
                goto fail_inputs;
            }
            if (ws_owned)
                k->ws_busy = 1;
        }
        ptrs[n_in + n_out] = ws;
    }

    /* ---- run */
    {
        PoolObject *po = (PoolObject *)k->pool_obj;
        void *pool = po ? (void *)po->pool : k->pool_raw;
        sd_entry_fn entry = k->entry;
        if (po) {
            Py_INCREF(po);
            po->active++;
        }
        if (k->release_gil) {
            Py_BEGIN_ALLOW_THREADS
            entry(ptrs, pool);
            Py_END_ALLOW_THREADS
        } else {
            entry(ptrs, pool);
        }
        if (po) {
            po->active--;
            Py_DECREF(po);
        }
    }
    if (ws_owned)
        k->ws_busy = 0;
    PyMem_RawFree(ws_tmp_raw);
    release_temps(tmps, n_in);

    if (k->returns == RET_SINGLE) {
        PyObject *one = PyTuple_GET_ITEM(result, 0);
        Py_INCREF(one);
        Py_DECREF(result);
        result = one;
    } else if (k->returns == RET_DICT) {
        PyObject *dct = PyDict_New();
        for (j = 0; dct && j < n_out; j++)
            if (PyDict_SetItem(dct, k->out[j].name, PyTuple_GET_ITEM(result, j)) < 0)
                Py_CLEAR(dct);
        Py_DECREF(result);
        result = dct;
    }
    goto done_noargs;

fail_inputs:
    release_temps(tmps, i < n_in ? i : n_in);
    result = NULL;
done_noargs:
    if (argv_buf != argv_small) {
        PyMem_Free(argv_buf);
        PyMem_Free(ptrs);
    }
    return result;
}

/* ------------------------------------------------------- construction */

static int Kernel_traverse(KernelObject *k, visitproc visit, void *arg) {
    Py_VISIT(k->pool_obj);
    Py_VISIT(k->owner);
    return 0;
}

static int Kernel_clear(KernelObject *k) {
    Py_CLEAR(k->pool_obj);
    Py_CLEAR(k->owner);
    return 0;
}

static void Kernel_dealloc(KernelObject *k) {
    PyObject_GC_UnTrack(k);
    if (k->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)k);
    Kernel_clear(k);
    for (Py_ssize_t i = 0; k->in && i < k->n_in; i++)
        spec_clear(&k->in[i]);
    for (Py_ssize_t i = 0; k->out && i < k->n_out; i++)
        spec_clear(&k->out[i]);
    PyMem_Free(k->in);
    PyMem_Free(k->out);
    PyMem_RawFree(k->ws_raw);
    Py_XDECREF(k->name);
    Py_XDECREF(k->input_names);
    Py_XDECREF(k->output_names);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static int parse_specs(PyObject *obj, const char *what, spec_t **out, Py_ssize_t *n_out,
                       PyObject **names) {
    PyObject *seq = PySequence_Fast(obj, "specs must be a sequence");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    spec_t *specs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(spec_t));
    PyObject *nt = PyTuple_New(n);
    if (!specs || !nt) {
        Py_DECREF(seq);
        PyMem_Free(specs);
        Py_XDECREF(nt);
        PyErr_NoMemory();
        return -1;
    }
    *out = specs; /* owned by the kernel from here on; *n_out = parsed count */
    *n_out = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (spec_parse(PySequence_Fast_GET_ITEM(seq, i), &specs[i], what, i) < 0)
            goto fail;
        *n_out = i + 1;
        for (Py_ssize_t j = 0; j < i; j++)
            if (PyUnicode_Compare(specs[j].name, specs[i].name) == 0) {
                PyErr_Format(PyExc_ValueError, "duplicate %s name %R", what, specs[i].name);
                goto fail;
            }
        Py_INCREF(specs[i].name);
        PyTuple_SET_ITEM(nt, i, specs[i].name);
    }
    Py_DECREF(seq);
    *names = nt;
    return 0;
fail:
    Py_DECREF(seq);
    Py_DECREF(nt);
    return -1;
}

static PyObject *Kernel_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"entry", "pool", "inputs", "outputs", "name", "returns",
                             "release_gil", "zero_outputs", "owner", "workspace_bytes", NULL};
    PyObject *entry_o, *pool_o, *ins_o, *outs_o, *name_o = NULL, *returns_o = NULL, *owner = NULL;
    PyObject *ws_o = Py_None;
    int release_gil = 1, zero_outputs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|$UUppOO:Kernel", kwlist, &entry_o, &pool_o,
                                     &ins_o, &outs_o, &name_o, &returns_o, &release_gil,
                                     &zero_outputs, &owner, &ws_o))
        return NULL;
    Py_ssize_t ws_bytes = -1;
    if (ws_o != Py_None) {
        ws_bytes = PyLong_Check(ws_o) && !PyBool_Check(ws_o) ? PyLong_AsSsize_t(ws_o) : -2;
        if (ws_bytes == -1 && PyErr_Occurred())
            return NULL;
        if (ws_bytes < 0) {
            PyErr_Format(PyExc_ValueError, "Kernel: workspace_bytes must be None or an int >= 0, "
                         "got %R", ws_o);
            return NULL;
        }
    }

    void *entry = PyLong_Check(entry_o) ? PyLong_AsVoidPtr(entry_o) : NULL;
    if (!entry) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "Kernel: entry must be a non-zero function address "
                         "(int), got %R", entry_o);
        return NULL;
    }

    KernelObject *k = (KernelObject *)type->tp_alloc(type, 0);
    if (!k)
        return NULL;
    k->vectorcall = Kernel_vectorcall;
    memcpy(&k->entry, &entry, sizeof entry);
    k->release_gil = release_gil;
    k->zero_outputs = zero_outputs;
    k->has_ws = ws_bytes >= 0;
    k->ws_bytes = ws_bytes > 0 ? (size_t)ws_bytes : 0;
    k->name = name_o ? name_o : PyUnicode_FromString("kernel");
    if (name_o)
        Py_INCREF(name_o);
    if (!k->name)
        goto fail;

    if (pool_o == Py_None) {
        /* serial */
    } else if (PyObject_TypeCheck(pool_o, &PoolType)) {
        Py_INCREF(pool_o);
        k->pool_obj = pool_o;
    } else if (PyLong_Check(pool_o)) {
        k->pool_raw = PyLong_AsVoidPtr(pool_o);
        if (!k->pool_raw && PyErr_Occurred())
            goto fail;
    } else {
        PyErr_Format(PyExc_TypeError, "Kernel: pool must be a Pool, an int sd_pool* address or "
                     "None, got %R", pool_o);
        goto fail;
    }

    if (parse_specs(ins_o, "input", &k->in, &k->n_in, &k->input_names) < 0)
        goto fail;
    if (parse_specs(outs_o, "output", &k->out, &k->n_out, &k->output_names) < 0)
        goto fail;

    k->returns = RET_TUPLE;
    if (returns_o) {
        if (PyUnicode_CompareWithASCIIString(returns_o, "tuple") == 0)
            k->returns = RET_TUPLE;
        else if (PyUnicode_CompareWithASCIIString(returns_o, "single") == 0)
            k->returns = RET_SINGLE;
        else if (PyUnicode_CompareWithASCIIString(returns_o, "dict") == 0)
            k->returns = RET_DICT;
        else {
            PyErr_Format(PyExc_ValueError, "Kernel: returns must be 'tuple', 'single' or 'dict', "
                         "got %R", returns_o);
            goto fail;
        }
        if (k->returns == RET_SINGLE && k->n_out != 1) {
            PyErr_Format(PyExc_ValueError, "Kernel: returns='single' needs exactly one output, "
                         "got %zd", k->n_out);
            goto fail;
        }
    }
    if (owner) {
        Py_INCREF(owner);
        k->owner = owner;
    }
    return (PyObject *)k;
fail:
    Py_DECREF(k);
    return NULL;
}

/* ------------------------------------------------------------- getters */

static PyObject *spec_tuple(const spec_t *s, int with_range) {
    if (with_range)
        return Py_BuildValue("(OOOO)", s->name, s->shape_tuple, (PyObject *)s->descr, s->range_obj);
    return Py_BuildValue("(OOO)", s->name, s->shape_tuple, (PyObject *)s->descr);
}

static PyObject *specs_tuple(const spec_t *s, Py_ssize_t n, int with_range) {
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; t && i < n; i++) {
        PyObject *e = spec_tuple(&s[i], with_range);
        if (!e) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, e);
    }
    return t;
}

static PyObject *Kernel_get_input_specs(KernelObject *k, void *Py_UNUSED(c)) {
    return specs_tuple(k->in, k->n_in, 1);
}
static PyObject *Kernel_get_output_specs(KernelObject *k, void *Py_UNUSED(c)) {
    return specs_tuple(k->out, k->n_out, 0);
}
static PyObject *Kernel_get_input_names(KernelObject *k, void *Py_UNUSED(c)) {
    Py_INCREF(k->input_names);
    return k->input_names;
}
static PyObject *Kernel_get_output_names(KernelObject *k, void *Py_UNUSED(c)) {
    Py_INCREF(k->output_names);
    return k->output_names;
}
static PyObject *Kernel_get_name(KernelObject *k, void *Py_UNUSED(c)) {
    Py_INCREF(k->name);
    return k->name;
}
static PyObject *Kernel_get_entry(KernelObject *k, void *Py_UNUSED(c)) {
    void *p;
    memcpy(&p, &k->entry, sizeof p);
    return PyLong_FromVoidPtr(p);
}
static PyObject *Kernel_get_pool(KernelObject *k, void *Py_UNUSED(c)) {
    if (k->pool_obj) {
        Py_INCREF(k->pool_obj);
        return k->pool_obj;
    }
    if (k->pool_raw)
        return PyLong_FromVoidPtr(k->pool_raw);
    Py_RETURN_NONE;
}
static PyObject *Kernel_get_workspace_bytes(KernelObject *k, void *Py_UNUSED(c)) {
    if (!k->has_ws)
        Py_RETURN_NONE;
    return PyLong_FromSize_t(k->ws_bytes);
}
static PyObject *Kernel_get_owner(KernelObject *k, void *Py_UNUSED(c)) {
    PyObject *o = k->owner ? k->owner : Py_None;
    Py_INCREF(o);
    return o;
}

static PyObject *Kernel_repr(KernelObject *k) {
    return PyUnicode_FromFormat("<codegen._runtime.Kernel %U%R -> %R>", k->name, k->input_names,
                                k->output_names);
}

static PyGetSetDef Kernel_getset[] = {
    {"name", (getter)Kernel_get_name, NULL, "name used in error messages", NULL},
    {"input_names", (getter)Kernel_get_input_names, NULL, "tuple of input names, in order", NULL},
    {"output_names", (getter)Kernel_get_output_names, NULL, "tuple of output names, in order", NULL},
    {"input_specs", (getter)Kernel_get_input_specs, NULL,
     "normalised input specs: (name, shape, dtype, label_range or None)", NULL},
    {"output_specs", (getter)Kernel_get_output_specs, NULL,
     "normalised output specs: (name, shape, dtype)", NULL},
    {"entry_address", (getter)Kernel_get_entry, NULL, "address of entry(args, pool)", NULL},
    {"pool", (getter)Kernel_get_pool, NULL, "the Pool (or raw address, or None)", NULL},
    {"owner", (getter)Kernel_get_owner, NULL, "object kept alive with the kernel", NULL},
    {"workspace_bytes", (getter)Kernel_get_workspace_bytes, NULL,
     "None (no workspace slot) or the workspace size in bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject KernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "codegen._runtime.Kernel",
    .tp_basicsize = sizeof(KernelObject),
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_vectorcall_offset = offsetof(KernelObject, vectorcall),
    .tp_repr = (reprfunc)Kernel_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc =
        "Kernel(entry, pool, inputs, outputs, *, name='kernel', returns='tuple', "
        "release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None)\n--\n\n"
        "Callable wrapper of a compiled entry point  void entry(void **args, void *pool).\n\n"
        "entry: int address.  pool: Pool, int sd_pool* address, or None (serial).\n"
        "inputs: sequence of (name, shape, dtype[, label_range]); label_range is an int C\n"
        "  (integer values must lie in [0, C)) or a (lo, hi) pair, checked on every call.\n"
        "outputs: sequence of (name, shape, dtype); () is a 0-d array.\n"
        "returns: 'tuple' (default), 'single' (the one output itself) or 'dict' (name -> array).\n"
        "zero_outputs: zero-fill outputs before the call (default: uninitialised memory).\n"
        "owner: any object to keep alive as long as the kernel (e.g. the JIT module).\n"
        "workspace_bytes: None = args are inputs then outputs.  An int n >= 0 appends one more\n"
        "  pointer: scratch memory of n bytes, 64-byte aligned, uninitialised, reused across\n"
        "  calls (a concurrent call gets its own); NULL when n == 0.\n\n"
        "kernel(*arrays, **named_arrays): inputs by position and/or by name.  Arrays with the\n"
        "exact dtype and shape that are C-contiguous, aligned and native-endian are passed\n"
        "without a copy; others are converted (same-kind casts: float<-float/int,\n"
        "int<-int with a value check; copies for non-contiguous data).  Complex, object,\n"
        "string, None, bool data, and float data for integer inputs raise TypeError; a wrong shape\n"
        "or an out-of-range label raises ValueError.  Outputs are fresh arrays every call.\n"
        "The GIL is released around entry().",
    .tp_traverse = (traverseproc)Kernel_traverse,
    .tp_clear = (inquiry)Kernel_clear,
    .tp_weaklistoffset = offsetof(KernelObject, weakreflist),
    .tp_getset = Kernel_getset,
    .tp_new = Kernel_new,
};

/* ==================================================================== module */

static PyObject *add_addr(PyObject *d, const char *name, void *addr) {
    PyObject *v = PyLong_FromVoidPtr(addr);
    if (!v || PyDict_SetItemString(d, name, v) < 0) {
        Py_XDECREF(v);
        return NULL;
    }
    Py_DECREF(v);
    return d;
}

#define SD_FN_ADDR(f) ((void *)(uintptr_t)(f))

static PyObject *symbol_addresses(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(a)) {
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (!add_addr(d, "sd_parallel_for", SD_FN_ADDR(sd_parallel_for)) ||
        !add_addr(d, "sd_pool_num_threads", SD_FN_ADDR(sd_pool_num_threads)) ||
        !add_addr(d, "sd_pool_create", SD_FN_ADDR(sd_pool_create)) ||
        !add_addr(d, "sd_pool_destroy", SD_FN_ADDR(sd_pool_destroy)) ||
        !add_addr(d, "sd_pool_set_spin_us", SD_FN_ADDR(sd_pool_set_spin_us)) ||
        !add_addr(d, "sd_pool_default_threads", SD_FN_ADDR(sd_pool_default_threads))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *default_num_threads(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(a)) {
    return PyLong_FromLong(sd_pool_default_threads());
}

static PyMethodDef module_methods[] = {
    {"symbol_addresses", symbol_addresses, METH_NOARGS,
     "symbol_addresses()\n--\n\ndict name -> address of the runtime functions generated code "
     "may call (sd_parallel_for, sd_pool_num_threads, ...), for llvmlite.binding.add_symbol."},
    {"default_num_threads", default_num_threads, METH_NOARGS,
     "default_num_threads()\n--\n\nThread count Pool(0) uses: $SYMDIFF_NUM_THREADS if a "
     "positive integer, else the CPUs this process may run on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef runtime_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "codegen._runtime",
    .m_doc = "Fast call path (Kernel) and thread pool (Pool, sd_parallel_for) for symdiff "
             "JIT-compiled kernels.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__runtime(void) {
    import_array();
    if (PyType_Ready(&PoolType) < 0 || PyType_Ready(&KernelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&runtime_module);
    if (!m)
        return NULL;
    Py_INCREF(&PoolType);
    if (PyModule_AddObject(m, "Pool", (PyObject *)&PoolType) < 0) {
        Py_DECREF(&PoolType);
        goto fail;
    }
    Py_INCREF(&KernelType);
    if (PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType) < 0) {
        Py_DECREF(&KernelType);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "SMALL_ARGS", SD_SMALL_ARGS) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

/*
 * Declarations shared by the files of the symdiff.codegen.runtime.native extension:
 *   runtime_pool.c    the Pool type (a Python owner of one sd_pool, see sd_pool.h)
 *   runtime_specs.c   argument specs: (name, shape, dtype[, label_range]) -> spec_t, label-range scan
 *   runtime_kernel.c  the Kernel call: binding, the exact-array fast path, output allocation, the run
 *   runtime_kernel_type.c  the Kernel type: construction, attributes, the type object
 *   native.c        module glue: symbol_addresses(), default_num_threads(), PyInit_native
 *
 * Call validation has one source, symdiff.signature.Signature: the Kernel only *detects* that a call
 * is not the fast path (an argument that is not an exact, aligned, C-contiguous, native array of the
 * spec's dtype and shape, or a label out of range) and then hands the whole call to
 * Signature.bind_call, which converts the arguments or raises the error every backend raises.
 */
#ifndef SD_RUNTIME_H
#define SD_RUNTIME_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef NPY_NO_DEPRECATED_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#endif
/* one numpy C-API table for all files of the extension; native.c fills it (import_array) */
#define PY_ARRAY_UNIQUE_SYMBOL sd_runtime_ARRAY_API
#ifndef SD_RUNTIME_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "sd_pool.h"

/* Built against numpy >= 2 headers (pyproject build requirement). */

#define SD_SMALL_ARGS 32 /* argument pointers live on the C stack up to this many */

/* ------------------------------------------------------------------ Pool */

typedef struct {
    PyObject_HEAD
    sd_pool *pool;       /* NULL once closed */
    int nthreads;
    Py_ssize_t active;   /* Kernel calls in flight (GIL-protected counter) */
    PyObject *weakreflist;
} PoolObject;

extern PyTypeObject SdPoolType;

/* ----------------------------------------------------------------- specs */

enum { KIND_FLOAT = 0, KIND_INT = 1, KIND_BOOL = 2, KIND_COMPLEX = 3 };

typedef struct {
    PyObject *name;          /* interned str */
    Py_hash_t hash;          /* hash(name), for keyword matching of non-interned names */
    PyObject *shape_tuple;   /* normalised shape, for introspection */
    PyArray_Descr *descr;    /* native byte order */
    PyObject *range_obj;     /* None or (lo, hi) */
    npy_intp *shape;         /* ndim entries */
    npy_intp size;
    int ndim;
    int type_num;
    int kind;
    int has_range;
    long long lo, hi;        /* allowed label values [lo, hi] (inclusive) when has_range */
} spec_t;

/* Parse a sequence of specs (what = "input" / "output") into *out (n entries, owned by the
 * caller even on failure: free with specs_free(*out, *n_out)) and a tuple of their names. */
int specs_parse(PyObject *obj, const char *what, spec_t **out, Py_ssize_t *n_out, PyObject **names);
void specs_free(spec_t *specs, Py_ssize_t n);
/* (name, shape, dtype[, range]) tuples of n specs: the normalised form, for introspection */
PyObject *specs_tuple(const spec_t *s, Py_ssize_t n, int with_range);
/* 1 if every value of the native, aligned, C-contiguous integer array a lies in [s->lo, s->hi] */
int labels_in_range(const spec_t *s, PyArrayObject *a);

/* ---------------------------------------------------------------- Kernel */

typedef void (*sd_entry_fn)(void **args, void *pool);

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
    PyObject *signature;     /* symdiff.signature.Signature for the slow path, or NULL until needed */
    int returns;
    int release_gil;
    int zero_outputs;
    int has_ws;              /* args carry a workspace pointer after the outputs */
    size_t ws_bytes;         /* its size (0 -> NULL pointer) */
    void *ws_raw;            /* cached workspace (malloc'd block; aligned view below) */
    void *ws;
    int ws_busy;             /* a call is using the cached workspace (GIL-protected) */
    PyObject *tail;          /* bytes appended as one more pointer after the workspace (the call's sizes), or NULL */
    PyObject *keywords_only; /* str naming the caller: positional arguments are refused with
                                Signature.positional_error(it, n); NULL: positional calls bind */
    PyObject *weakreflist;
} KernelObject;

extern PyTypeObject SdKernelType;                /* runtime_kernel_type.c */
PyObject *Kernel_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                            PyObject *kwnames); /* runtime_kernel.c */
/* the kernel's Signature (given, or built from its specs on first use); borrowed, NULL on error */
PyObject *kernel_signature(KernelObject *k);

#endif /* SD_RUNTIME_H */

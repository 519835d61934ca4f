/*
 * The Kernel type: a callable wrapper of a compiled entry point  void entry(void **args, void *pool)
 * where args = data pointers of all inputs, then all outputs (C-contiguous, aligned, native byte
 * order; inputs are never written), then -- only when the Kernel has workspace_bytes set -- a
 * scratch workspace pointer, then -- only when the Kernel has a tail -- a pointer to the tail bytes
 * (a program with symbolic sizes: their int64 values), and pool is an sd_pool* or NULL.
 *
 * A call whose arguments are all exact arrays (the spec's dtype and shape, C-contiguous, aligned,
 * native, labels in range) passed by position or by name in any order is bound, unboxed and run in
 * C (about a microsecond).  Any other call goes to Signature.bind_call (symdiff/signature.py), the
 * one place that converts arguments and words every error; its arrays are then passed as they are.
 */
#include "runtime.h"



#define SD_WS_ALIGN 64

/* A workspace of n bytes aligned to SD_WS_ALIGN; *raw is what to free (with free()). From SD_WS_HUGE bytes
 * on (Linux) it is 2 MiB aligned and advised as transparent huge pages: a large product's packing reads
 * rows ~100 KB apart, one 4 KiB page each, and misses the TLB on nearly every row. */
#define SD_WS_HUGE ((size_t)4 << 20)
#ifdef __linux__
#include <sys/mman.h>
#endif
#include <stdlib.h>

/* SYMDIFF_HUGE_PAGES=0 turns the huge-page advice off (read once) */
static int sd_huge_pages(void) {
    static int on = -1;
    if (on < 0) {
        const char *s = getenv("SYMDIFF_HUGE_PAGES");
        on = !(s && s[0] == '0');
    }
    return on;
}
#define SD_HUGE_PAGE ((size_t)2 << 20)
static void *ws_alloc(size_t n, void **raw) {
    *raw = NULL;
#ifdef MADV_HUGEPAGE
    if (n >= SD_WS_HUGE && sd_huge_pages()) {
        size_t size = (n + SD_HUGE_PAGE - 1) & ~(SD_HUGE_PAGE - 1);
        if (posix_memalign(raw, SD_HUGE_PAGE, size) == 0) {
            (void)madvise(*raw, size, MADV_HUGEPAGE); /* advice only: 4 KiB pages if refused */
            return *raw;
        }
        *raw = NULL;
    }
#endif
    if (posix_memalign(raw, SD_WS_ALIGN, n ? n : 1) != 0) {
        *raw = NULL;
        return NULL;
    }
    return *raw;
}

/* ---------------------------------------------------------- binding */

#define SD_CARRAY_FLAGS (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED)

static inline int shape_matches(const spec_t *s, PyArrayObject *a) {
    if (PyArray_NDIM(a) != s->ndim)
        return 0;
    const npy_intp *d = PyArray_DIMS(a);
    for (int i = 0; i < s->ndim; i++)
        if (d[i] != s->shape[i])
            return 0;
    return 1;
}

/* 1 if o can be passed as it is: an exact ndarray of s's dtype and shape, C-contiguous, aligned,
 * native byte order, labels in range.  exact_type: compare type numbers (fast path) or accept any
 * equivalent dtype (arrays that Signature returned). */
static inline int passes_as_is(const spec_t *s, PyObject *o, int exact_type) {
    if (exact_type ? Py_TYPE(o) != &PyArray_Type : !PyArray_Check(o))
        return 0;
    PyArrayObject *a = (PyArrayObject *)o;
    if (exact_type ? PyArray_TYPE(a) != s->type_num : !PyArray_EquivTypes(PyArray_DESCR(a), s->descr))
        return 0;
    if (!shape_matches(s, a) || (PyArray_FLAGS(a) & SD_CARRAY_FLAGS) != SD_CARRAY_FLAGS ||
        !PyArray_ISNOTSWAPPED(a))
        return 0;
    return !s->has_range || labels_in_range(s, a);
}

/* Keyword arguments -> argv_buf in spec order.  1 if bound, 0 if not (a name unknown, repeated or
 * missing: the slow path words the error); sets no exception. */
static int bind_keywords(KernelObject *k, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                         PyObject **argv_buf) {
    const Py_ssize_t n_in = k->n_in, nkw = PyTuple_GET_SIZE(kwnames);
    Py_ssize_t i;
    if (nargs + nkw != n_in)
        return 0;
    for (i = 0; i < n_in; i++)
        argv_buf[i] = i < nargs ? args[i] : NULL;
    for (Py_ssize_t kw = 0; kw < nkw; kw++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, kw);
        Py_ssize_t idx = nargs + kw; /* names usually come in spec order */
        if (k->in[idx].name != key) {
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
        if (idx < 0 || argv_buf[idx])
            return 0;
        argv_buf[idx] = args[nargs + kw];
    }
    return 1; /* n_in slots, nargs + nkw == n_in distinct fills: all bound */
}

/* The kernel's Signature: the one given to the constructor, else built on first use from the
 * normalised input specs (symdiff.signature.Signature.from_specs). Borrowed reference or NULL. */
PyObject *kernel_signature(KernelObject *k) {
    if (k->signature)
        return k->signature;
    PyObject *mod = PyImport_ImportModule("symdiff.signature");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "Signature") : NULL;
    Py_XDECREF(mod);
    PyObject *specs = cls ? specs_tuple(k->in, k->n_in, 1) : NULL;
    PyObject *sig = specs ? PyObject_CallMethod(cls, "from_specs", "OO", specs, k->name) : NULL;
    Py_XDECREF(cls);
    Py_XDECREF(specs);
    if (!sig)
        return NULL;
    if (!k->signature) /* another thread may have built it meanwhile (the calls above may release the GIL) */
        k->signature = sig;
    else
        Py_DECREF(sig);
    return k->signature;
}

/* The slow path: Signature.bind_call(args, kwargs) -> a list of n_in arrays (new reference), or
 * NULL with Signature's exception set. */
static PyObject *bind_with_signature(KernelObject *k, PyObject *const *args, Py_ssize_t nargs,
                                     PyObject *kwnames) {
    PyObject *sig = kernel_signature(k);
    if (!sig)
        return NULL;
    PyObject *pos = PyTuple_New(nargs), *kw = PyDict_New(), *bound = NULL;
    if (!pos || !kw)
        goto done;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(pos, i, args[i]);
    }
    for (Py_ssize_t i = 0; kwnames && i < PyTuple_GET_SIZE(kwnames); i++)
        if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
            goto done;
    bound = PyObject_CallMethod(sig, "bind_call", "OO", pos, kw);
    if (bound && (!PyList_Check(bound) || PyList_GET_SIZE(bound) != k->n_in)) {
        PyErr_Format(PyExc_RuntimeError, "%U(): Signature.bind_call returned %R, not a list of %zd "
                     "arrays", k->name, bound, k->n_in);
        Py_CLEAR(bound);
    }
done:
    Py_XDECREF(pos);
    Py_XDECREF(kw);
    return bound;
}

/* An array Signature returned must pass as is (same dtype up to equivalence); else a RuntimeError. */
static int signature_array_ok(KernelObject *k, Py_ssize_t i, PyObject *o) {
    if (passes_as_is(&k->in[i], o, 0))
        return 1;
    PyErr_Format(PyExc_RuntimeError, "%U(): input '%U': the Signature returned an array the kernel "
                 "cannot take: %R", k->name, k->in[i].name, o);
    return 0;
}

/* One argument off the fast path: Signature.convert_input(i, o) -> a new reference to an array
 * that passes as is, or NULL with Signature's exception set. */
static PyObject *convert_with_signature(KernelObject *k, Py_ssize_t i, PyObject *o) {
    PyObject *sig = kernel_signature(k);
    PyObject *arr = sig ? PyObject_CallMethod(sig, "convert_input", "nO", i, o) : NULL;
    if (arr && !signature_array_ok(k, i, arr))
        Py_CLEAR(arr);
    return arr;
}

/* ------------------------------------------------------------ the call */

PyObject *Kernel_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
    KernelObject *k = (KernelObject *)self;
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    const Py_ssize_t n_in = k->n_in, n_out = k->n_out, n_all = n_in + n_out + k->has_ws + (k->tail != NULL);

    PyObject *argv_small[SD_SMALL_ARGS];
    PyObject *tmps_small[SD_SMALL_ARGS];
    void *ptrs_small[SD_SMALL_ARGS];
    PyObject **argv_buf = argv_small, **tmps = tmps_small;
    void **ptrs = ptrs_small;
    PyObject *const *argv = args;
    PyObject *bound = NULL; /* Signature's arrays when it bound the whole call */
    PyObject *result = NULL;
    Py_ssize_t i, j, n_tmps = 0;

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

    /* ---- a keywords-only kernel refuses positional arguments with Signature's own message */
    if (nargs && k->keywords_only) {
        PyObject *sig = kernel_signature(k);
        PyObject *exc = sig ? PyObject_CallMethod(sig, "positional_error", "On", k->keywords_only, nargs) : NULL;
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        goto done;
    }
    /* ---- bind: by position, or by name in C; a call C cannot bind goes to Signature.bind_call */
    const int has_kw = kwnames && PyTuple_GET_SIZE(kwnames);
    if (has_kw ? bind_keywords(k, args, nargs, kwnames, argv_buf) : nargs == n_in) {
        if (has_kw)
            argv = argv_buf;
        /* ---- inputs: exact arrays pass as they are; Signature converts (or refuses) the others */
        for (i = 0; i < n_in; i++) {
            PyObject *o = argv[i];
            if (!passes_as_is(&k->in[i], o, 1)) {
                o = convert_with_signature(k, i, o);
                if (!o)
                    goto done;
                tmps[n_tmps++] = o;
            }
            ptrs[i] = PyArray_DATA((PyArrayObject *)o);
        }
    } else {
        bound = bind_with_signature(k, args, nargs, kwnames);
        if (!bound)
            goto done;
        for (i = 0; i < n_in; i++) {
            PyObject *o = PyList_GET_ITEM(bound, i);
            if (!signature_array_ok(k, i, o))
                goto done;
            ptrs[i] = PyArray_DATA((PyArrayObject *)o);
        }
    }

    /* ---- outputs */
    result = PyTuple_New(n_out);
    if (!result)
        goto done;
    for (j = 0; j < n_out; j++) {
        const spec_t *s = &k->out[j];
        Py_INCREF(s->descr);
        PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, s->descr, s->ndim, s->shape, NULL,
                                             NULL, 0, NULL);
        if (!arr) {
            Py_CLEAR(result);
            goto done;
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
                goto done;
            }
            if (ws_owned)
                k->ws_busy = 1;
        }
        ptrs[n_in + n_out] = ws;
    }
    if (k->tail) /* the entry's last argument: a constant block (symbolic programs: the sizes) */
        ptrs[n_in + n_out + k->has_ws] = PyBytes_AS_STRING(k->tail);

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
    free(ws_tmp_raw);

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
done:
    Py_XDECREF(bound);
    for (i = 0; i < n_tmps; i++)
        Py_DECREF(tmps[i]);
    if (argv_buf != argv_small) {
        PyMem_Free(argv_buf);
        PyMem_Free(ptrs);
    }
    return result;
}

/*
 * Argument specs of a Kernel: (name, shape, dtype[, label_range]) -> spec_t, checked once at
 * construction (these messages are about the Kernel's own arguments, not about a call), and the
 * label-range scan the call's fast path uses to decide whether an integer array may pass as is.
 */
#include "runtime.h"

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

int specs_parse(PyObject *obj, const char *what, spec_t **out, Py_ssize_t *n_out,
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

void specs_free(spec_t *specs, Py_ssize_t n) {
    for (Py_ssize_t i = 0; specs && i < n; i++)
        spec_clear(&specs[i]);
    PyMem_Free(specs);
}

static PyObject *spec_tuple(const spec_t *s, int with_range) {
    if (with_range)
        return Py_BuildValue("(OOOO)", s->name, s->shape_tuple, (PyObject *)s->descr, s->range_obj);
    return Py_BuildValue("(OOO)", s->name, s->shape_tuple, (PyObject *)s->descr);
}

PyObject *specs_tuple(const spec_t *s, Py_ssize_t n, int with_range) {
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

/* ---------------------------------------------------- integer range check */

/* 1 if some element of T p[0..n) lies outside [lo, hi]; unsigned 64-bit values above LLONG_MAX
 * are always outside (lo, hi are long longs).  v - lo > hi - lo (unsigned) is lo <= v <= hi. */
#define SD_ANY_OUTSIDE(T, UNSIGNED64)                                                     \
    do {                                                                                  \
        const T *p = (const T *)data;                                                     \
        for (npy_intp i = 0; i < n; i++) {                                                \
            if (UNSIGNED64 && (unsigned long long)p[i] > (unsigned long long)LLONG_MAX)   \
                return 1;                                                                 \
            if ((unsigned long long)(long long)p[i] - (unsigned long long)lo > span)     \
                return 1;                                                                 \
        }                                                                                 \
        return 0;                                                                         \
    } while (0)

static int any_outside(const void *data, char kind, int elsize, npy_intp n, long long lo, long long hi) {
    const unsigned long long span = (unsigned long long)hi - (unsigned long long)lo;
    if (kind == 'u') {
        switch (elsize) {
        case 1: SD_ANY_OUTSIDE(npy_uint8, 0);
        case 2: SD_ANY_OUTSIDE(npy_uint16, 0);
        case 4: SD_ANY_OUTSIDE(npy_uint32, 0);
        default: SD_ANY_OUTSIDE(npy_uint64, 1);
        }
    }
    switch (elsize) {
    case 1: SD_ANY_OUTSIDE(npy_int8, 0);
    case 2: SD_ANY_OUTSIDE(npy_int16, 0);
    case 4: SD_ANY_OUTSIDE(npy_int32, 0);
    default: SD_ANY_OUTSIDE(npy_int64, 0);
    }
}
#undef SD_ANY_OUTSIDE

int labels_in_range(const spec_t *s, PyArrayObject *a) {
    PyArray_Descr *d = PyArray_DESCR(a);
    return !any_outside(PyArray_DATA(a), d->kind, (int)PyDataType_ELSIZE(d), PyArray_SIZE(a), s->lo, s->hi);
}

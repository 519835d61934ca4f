/*
 * The Kernel type's construction (argument checks, specs), attributes and type object; the call
 * itself is in runtime_kernel.c.
 */
#include "runtime.h"

/* ------------------------------------------------------- construction */

static int Kernel_traverse(KernelObject *k, visitproc visit, void *arg) {
    Py_VISIT(k->pool_obj);
    Py_VISIT(k->owner);
    Py_VISIT(k->signature);
    return 0;
}

static int Kernel_clear(KernelObject *k) {
    Py_CLEAR(k->pool_obj);
    Py_CLEAR(k->owner);
    Py_CLEAR(k->signature);
    return 0;
}

static void Kernel_dealloc(KernelObject *k) {
    PyObject_GC_UnTrack(k);
    if (k->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)k);
    Kernel_clear(k);
    specs_free(k->in, k->n_in);
    specs_free(k->out, k->n_out);
    free(k->ws_raw);
    Py_XDECREF(k->tail);
    Py_XDECREF(k->keywords_only);
    Py_XDECREF(k->name);
    Py_XDECREF(k->input_names);
    Py_XDECREF(k->output_names);
    Py_TYPE(k)->tp_free((PyObject *)k);
}

static PyObject *Kernel_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"entry", "pool", "inputs", "outputs", "name", "returns",
                             "release_gil", "zero_outputs", "owner", "workspace_bytes", "signature",
                             "tail", "keywords_only", NULL};
    PyObject *entry_o, *pool_o, *ins_o, *outs_o, *name_o = NULL, *returns_o = NULL, *owner = NULL;
    PyObject *ws_o = Py_None, *sig_o = Py_None, *tail_o = Py_None, *kwo_o = Py_None;
    int release_gil = 1, zero_outputs = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|$UUppOOOOO:Kernel", kwlist, &entry_o, &pool_o,
                                     &ins_o, &outs_o, &name_o, &returns_o, &release_gil,
                                     &zero_outputs, &owner, &ws_o, &sig_o, &tail_o, &kwo_o))
        return NULL;
    if (kwo_o != Py_None && !PyUnicode_Check(kwo_o)) {
        PyErr_Format(PyExc_TypeError, "Kernel: keywords_only must be None or a str, got %R", kwo_o);
        return NULL;
    }
    if (tail_o != Py_None && !PyBytes_CheckExact(tail_o)) {
        PyErr_Format(PyExc_TypeError, "Kernel: tail must be None or bytes, got %R", tail_o);
        return NULL;
    }
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
    if (tail_o != Py_None) {
        Py_INCREF(tail_o);
        k->tail = tail_o;
    }
    if (kwo_o != Py_None) {
        Py_INCREF(kwo_o);
        k->keywords_only = kwo_o;
    }
    k->ws_bytes = ws_bytes > 0 ? (size_t)ws_bytes : 0;
    k->name = name_o ? name_o : PyUnicode_FromString("kernel");
    if (name_o)
        Py_INCREF(name_o);
    if (!k->name)
        goto fail;

    if (pool_o == Py_None) {
        /* serial */
    } else if (PyObject_TypeCheck(pool_o, &SdPoolType)) {
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

    if (specs_parse(ins_o, "input", &k->in, &k->n_in, &k->input_names) < 0)
        goto fail;
    if (specs_parse(outs_o, "output", &k->out, &k->n_out, &k->output_names) < 0)
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
    if (sig_o != Py_None) {
        Py_INCREF(sig_o);
        k->signature = sig_o;
    }
    return (PyObject *)k;
fail:
    Py_DECREF(k);
    return NULL;
}

/* ------------------------------------------------------------- getters */

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

static PyObject *Kernel_get_signature(KernelObject *k, void *Py_UNUSED(c)) {
    PyObject *sig = kernel_signature(k);
    Py_XINCREF(sig);
    return sig;
}

static PyObject *Kernel_repr(KernelObject *k) {
    return PyUnicode_FromFormat("<symdiff.codegen.runtime.native.Kernel %U%R -> %R>", k->name, k->input_names,
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
    {"signature", (getter)Kernel_get_signature, NULL,
     "the symdiff.signature.Signature that converts and checks calls off the fast path", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject SdKernelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "symdiff.codegen.runtime.native.Kernel",
    .tp_basicsize = sizeof(KernelObject),
    .tp_dealloc = (destructor)Kernel_dealloc,
    .tp_vectorcall_offset = offsetof(KernelObject, vectorcall),
    .tp_repr = (reprfunc)Kernel_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc =
        "Kernel(entry, pool, inputs, outputs, *, name='kernel', returns='tuple', "
        "release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None, signature=None, tail=None, "
        "keywords_only=None)\n--\n\n"
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
        "  calls (a concurrent call gets its own); NULL when n == 0.\n"
        "signature: a symdiff.signature.Signature with the same inputs (default: built from\n"
        "  `inputs` on first need, its messages prefixed with `name()`).\n"
        "tail: None, or bytes whose address is one more pointer after the workspace (a program\n"
        "  with symbolic sizes: their int64 values, one Kernel per size set).\n"
        "keywords_only: None, or a str naming the caller: a call with positional arguments then\n"
        "  raises signature.positional_error(keywords_only, n) (names only, as symdiff's\n"
        "  compiled functions without inputs=[...]).\n\n"
        "kernel(*arrays, **named_arrays): inputs by position and/or by name.  Arrays with the\n"
        "exact dtype and shape that are C-contiguous, aligned and native-endian (labels in\n"
        "range) are passed without a copy.  Every other call goes to signature.bind_call,\n"
        "which converts the arguments (float<-float/int casts, int<-int with a value check,\n"
        "copies) or raises the error every symdiff backend raises.  Outputs are fresh arrays\n"
        "every call.  The GIL is released around entry().",
    .tp_traverse = (traverseproc)Kernel_traverse,
    .tp_clear = (inquiry)Kernel_clear,
    .tp_weaklistoffset = offsetof(KernelObject, weakreflist),
    .tp_getset = Kernel_getset,
    .tp_new = Kernel_new,
};

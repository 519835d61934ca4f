/*
 * The Pool type: a Python object owning one sd_pool (sd_pool.c), joined when collected or closed.
 * Kernel calls count themselves in `active`, so close() is refused while one is in flight.
 */
#include "runtime.h"

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
    return PyUnicode_FromFormat("<symdiff.codegen.runtime.native.Pool nthreads=%d%s>", self->nthreads,
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

PyTypeObject SdPoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "symdiff.codegen.runtime.native.Pool",
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

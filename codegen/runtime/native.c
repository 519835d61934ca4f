/*
 * symdiff.codegen.runtime.native -- the fast call path for JIT-compiled symdiff kernels: module glue.
 *
 * Types / functions (see the docstrings for the exact signatures; runtime.h lists the files):
 *   Pool(nthreads=0)                      owns one sd_pool (0 = default count)       runtime_pool.c
 *   Kernel(entry, pool, inputs, outputs, *, name="kernel", returns="tuple",
 *          release_gil=True, zero_outputs=False, owner=None, workspace_bytes=None,
 *          signature=None)                                                          runtime_kernel.c
 *   symbol_addresses() -> dict[str, int]  for llvmlite.binding.add_symbol
 *   default_num_threads() -> int
 */
#define SD_RUNTIME_MAIN /* this file fills the numpy C-API table */
#include "runtime.h"

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
    .m_name = "symdiff.codegen.runtime.native",
    .m_doc = "Fast call path (Kernel) and thread pool (Pool, sd_parallel_for) for symdiff "
             "JIT-compiled kernels.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_native(void) {
    import_array();
    if (PyType_Ready(&SdPoolType) < 0 || PyType_Ready(&SdKernelType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&runtime_module);
    if (!m)
        return NULL;
    Py_INCREF(&SdPoolType);
    if (PyModule_AddObject(m, "Pool", (PyObject *)&SdPoolType) < 0) {
        Py_DECREF(&SdPoolType);
        goto fail;
    }
    Py_INCREF(&SdKernelType);
    if (PyModule_AddObject(m, "Kernel", (PyObject *)&SdKernelType) < 0) {
        Py_DECREF(&SdKernelType);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "SMALL_ARGS", SD_SMALL_ARGS) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}

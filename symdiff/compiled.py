"""``sd.compile``: simplify a graph, look its backend up in the registry (``symdiff/backends.py``), return
a callable; and the NumPy reference backend, which the core registers itself."""
from __future__ import annotations

import threading
import time
from typing import Optional, Sequence

import numpy as np

from . import dims as _dims
from .backends import Backend, get_backend, register_backend
from .dim_binding import SymbolicUnsupported, is_symbolic_graph, specialize
from .ir import Node, leaves, toposort
from .optable import OPS
from .signature import Signature
from .simplify import simplify

DEFAULT_BACKEND = "llvm"


class CompiledFunction:
    """A compiled graph. Call it with keyword NumPy arrays named after the graph's leaves; compiled with
    ``inputs=[...]`` it also takes them positionally, in that order.

    ``input_names``: the argument order -- ``inputs=``'s, else the graph's leaves in topological order
    (the order the graph first reads them, which need not be the order they were declared in).
    Returns one array for a single-tensor graph and a tuple for a list of outputs. Outputs are fresh
    arrays: they never alias each other or the inputs.
    """

    backend = "abstract"
    compiles = 1  # machine-code compiles behind this function (a SpecializedFunction counts one per size set)

    def __init__(self, outputs: Sequence[Node], single: bool, inputs: Optional[Sequence[Node]] = None) -> None:
        self.outputs = list(outputs)
        self.single = single
        self.signature = Signature(self.outputs, order=inputs)
        self.input_names = self.signature.names
        self.output_specs = [(o.shape, o.dtype) for o in self.outputs]

    def __call__(self, *args, **kwargs):
        if args:
            self.check_positional(len(args))
            arrays, sizes = self.signature.bind_call_sized(args, kwargs)
        else:
            arrays, sizes = self.signature.bind_sized(kwargs)
        results = self._run_sized(arrays, sizes) if sizes else self._run(arrays)
        return results[0] if self.single else tuple(results)

    def _run_sized(self, arrays: list[np.ndarray], sizes: dict[str, int]) -> list[np.ndarray]:
        """Run a graph with symbolic sizes: ``sizes`` are the named sizes this call binds."""
        raise NotImplementedError(f"the {self.backend} backend does not run graphs with symbolic sizes")

    def check_positional(self, nargs: int) -> None:
        """Raise the "use keywords or inputs=" error unless compiled with an argument order."""
        if not self.signature.positional:
            raise self.signature.positional_error(f"this compiled function ({self.backend})", nargs)

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def __reduce__(self):
        """Pickle as the serialized graph and compile arguments (``symdiff.distributed.portable``), never
        machine code or pointers: unpickling compiles once per process and reuses it."""
        from .distributed.portable import reduce_compiled  # lazy: the core does not need it to compile
        return reduce_compiled(self)

    def __repr__(self) -> str:
        return f"<symdiff compiled [{self.backend}] ({self.signature.describe()}) -> {len(self.outputs)} output(s)>"


def _fresh(results: list[np.ndarray], inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Copy any result that shares memory with an input or an earlier result."""
    out: list[np.ndarray] = []
    for r in results:
        if any(np.shares_memory(r, o) for o in out) or any(np.shares_memory(r, i) for i in inputs):
            r = r.copy()
        out.append(r)
    return out


class NumpyFunction(CompiledFunction):
    """The reference interpreter: evaluates the graph node by node with NumPy (the oracle for every backend)."""

    backend = "numpy"

    def __init__(self, outputs: Sequence[Node], single: bool, inputs: Optional[Sequence[Node]] = None) -> None:
        super().__init__(outputs, single, inputs)
        self.order = toposort(self.outputs)
        pos = {n: i for i, n in enumerate(self.order)}
        last_use = {n: pos[n] for n in self.order}
        for n in self.order:
            for i in n.inputs:
                last_use[i] = max(last_use[i], pos[n])
        outs = set(self.outputs)
        # values that can be dropped after step k
        self.free_after: list[list[Node]] = [[] for _ in self.order]
        for n, k in last_use.items():
            if n not in outs:
                self.free_after[k].append(n)
        self.leaf_slots = {n: self.input_names.index(n.name) for n in self.order if n.is_leaf}
        self.sized = {n for n in self.order if _dims.has_dims(n.attrs)}  # attributes evaluated per call

    def _run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self._run_sized(arrays, {})

    def _run_sized(self, arrays: list[np.ndarray], sizes: dict[str, int]) -> list[np.ndarray]:
        env: dict[Node, np.ndarray] = {}
        with np.errstate(all="ignore"):  # NaN/inf propagate silently, as in compiled code
            for k, n in enumerate(self.order):
                if n.is_leaf:
                    env[n] = arrays[self.leaf_slots[n]]
                elif n.op == "const":
                    env[n] = n.value
                else:
                    opdef = OPS[n.op]
                    vals = [env[i] for i in n.inputs]
                    if opdef.elementwise:
                        v = opdef.impl(*vals)
                    else:
                        v = opdef.impl(*vals, **(_dims.substitute(n.attrs, sizes) if n in self.sized else n.attrs))
                    env[n] = np.asarray(v, dtype=n.dtype)
                for d in self.free_after[k]:
                    env.pop(d, None)
        results = [np.asarray(env[o], dtype=o.dtype).reshape(_dims.substitute(o.shape, sizes)) for o in self.outputs]
        # read-only results are constants / broadcast views of graph data: hand out a writable copy
        return _fresh([r if r.flags.c_contiguous and r.flags.writeable else r.copy() for r in results], arrays)


class SpecializedFunction(CompiledFunction):
    """A graph with symbolic sizes on a backend that compiles fixed shapes: each new set of sizes is
    specialised (``dim_binding.specialize``) and compiled once, then kept; calls with sizes seen before reuse
    that compile (``compiles`` counts them)."""

    def __init__(self, outputs: Sequence[Node], single: bool, spec: Backend, options: dict,
                 simplify_graph: bool) -> None:
        super().__init__(outputs, single, options.get("inputs"))
        self.backend = spec.name
        self._spec, self._options, self._simplify = spec, dict(options), simplify_graph
        self._by_sizes: dict = {}
        self._lock = threading.Lock()
        order = options.get("inputs")
        self._order = list(order) if order is not None else [n for n in toposort(self.outputs) if n.is_leaf]

    @property
    def compiles(self) -> int:
        """How many size sets this function has compiled for."""
        return len(self._by_sizes)

    def for_sizes(self, sizes: dict[str, int]) -> CompiledFunction:
        """The backend's compiled function for these named sizes (compiled on first use)."""
        key = tuple(sorted(sizes.items()))
        fn = self._by_sizes.get(key)
        if fn is None:
            with self._lock:
                fn = self._by_sizes.get(key)
                if fn is None:
                    *outs, = specialize(self.outputs + self._order, sizes)
                    outs, order = outs[:len(self.outputs)], outs[len(self.outputs):]
                    if self._simplify:
                        outs = simplify(outs)
                    fn = self._by_sizes[key] = self._spec.factory(outs, False, **{**self._options, "inputs": order})
        return fn

    def __call__(self, *args, **kwargs):
        # keyword calls go straight to the compiled function of their sizes, which validates the arrays itself
        sizes = None if args else self.signature.call_sizes(kwargs)
        if sizes is None:
            return super().__call__(*args, **kwargs)
        results = self.for_sizes(sizes)(**kwargs)
        return results[0] if self.single else results

    def _run_sized(self, arrays: list[np.ndarray], sizes: dict[str, int]) -> list[np.ndarray]:
        return list(self.for_sizes(sizes)(*arrays))


def _normalize_outputs(outputs) -> tuple[list[Node], bool]:
    single = isinstance(outputs, Node)
    outs = [outputs] if single else list(outputs)
    if not outs:
        raise ValueError("compile: no outputs given")
    for o in outs:
        if not isinstance(o, Node):
            raise TypeError(f"compile: outputs must be symdiff tensors, got {type(o).__name__}")
    return outs, single


def compile(outputs, backend: str | None = None, *, inputs: Optional[Sequence[Node]] = None,  # noqa: A001
            simplify_graph: bool = True, **options) -> CompiledFunction:
    """Compile one tensor or a list of tensors into a callable.

    ``inputs``: the argument order, as ``theano.function(inputs, outputs)`` or CasADi's ``Function``: every
    leaf the outputs read, once each (more are allowed: unread slots); the function then also accepts
    positional arguments in that order (keywords still work). Without it, call with keywords.

    ``backend``: a registered backend (``symdiff.list_backends()`` lists them): "llvm" (JIT machine code,
    the default), "numpy" (reference interpreter), "cuda" (NVIDIA GPU), "cuda-cpu" (the generated CUDA
    source run on the CPU). ``options`` go to the backend; an option it does not have is a ValueError
    naming its valid ones.
    """
    outs, single = _normalize_outputs(outputs)
    spec = get_backend(backend or DEFAULT_BACKEND)
    opts = spec.resolve_options(options)  # before simplifying: a typo fails fast
    if inputs is not None:  # checked against the caller's graph (simplifying may drop a leaf it reads)
        inputs = [inputs] if isinstance(inputs, Node) else list(inputs)
        Signature(outs, order=inputs)
        opts = {**opts, "inputs": inputs}
    t0 = time.perf_counter()
    symbolic = is_symbolic_graph(outs)
    keyword_only = symbolic and inputs is None
    if keyword_only:  # keep every leaf: one the simplifier drops (ones_like(x)) may still bind a size
        opts = {**opts, "inputs": leaves(outs)}
    if simplify_graph:
        outs = simplify(outs)
    if not spec.symbolic_dims and symbolic:
        fn = SpecializedFunction(outs, single, spec, opts, simplify_graph)
    else:
        try:
            fn = spec.factory(outs, single, **opts)
        except SymbolicUnsupported as e:  # a kernel the backend cannot size at run time: one compile per size set
            fn = SpecializedFunction(outs, single, spec, opts, simplify_graph)
            fn.specialized_because = str(e)
    if keyword_only:
        fn.signature.positional = False  # (the order is the caller's graph's, not one they chose)
    fn.compile_seconds = time.perf_counter() - t0
    # what another process needs to compile the same function (pickling, symdiff.distributed)
    fn.compile_args = {"backend": spec.name, "options": {k: v for k, v in opts.items() if k != "inputs"},
                       "inputs": inputs}
    return fn


register_backend(Backend("numpy", NumpyFunction, {}, "reference interpreter: evaluates the graph node by node "
                                                     "with NumPy (the oracle for every backend)", symbolic_dims=True))

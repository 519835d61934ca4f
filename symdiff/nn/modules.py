"""Modules: objects that build pieces of a symdiff graph and own named parameters.

Calling a module on tensors (``y = layer(x)``) adds its operations to the graph and returns the output
tensor(s); nothing is computed until the graph is compiled. A module owns

- parameters: ``sd.param`` leaves named ``<module name>_<suffix>`` (``fc1_W``, ``fc1_b``), created on
  first use and cached, each carrying its initialiser as ``init`` metadata;
- buffers (batch norm's running statistics): ``sd.input`` leaves named the same way; they are inputs of
  the graph, not trained, and a training graph outputs their new values (:meth:`Module.state_updates`).

Names: a module given no ``name`` is named after its kind (``linear``, ``bn``, ``dropout``); a
:class:`Sequential` names its unnamed children ``<its name>_<position>`` (``mlp_0``, ``mlp_2``). Two
distinct modules with the same name would share parameter leaves (a graph is hash-consed by name and
shape), so containers raise if two children own a parameter of the same name.

Modes: ``module.train()`` (default) and ``module.eval()`` select what the *next* call builds: dropout
is the identity in evaluation mode and batch norm uses its running statistics. Build the training
graph and the evaluation graph by calling the model once in each mode; both use the same parameters.
"""
from __future__ import annotations

import zlib
from typing import Iterator, Optional

import numpy as np

from .. import api as sd
from .. import dims as _dims
from ..ir import Node
from ..ops_reduce import axis_size
from . import functional as F
from . import init as _init


class Module:
    """Base class. Subclasses implement :meth:`forward` and declare parameters with :meth:`_declare_param`."""

    kind = "module"  # the default name

    def __init__(self, name: Optional[str] = None) -> None:
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise ValueError(f"{type(self).__name__}: name must be a Python identifier, got {name!r}")
        self._name = name or self.kind
        self._named = name is not None
        self.training = True
        self._param_specs: dict[str, tuple] = {}   # suffix -> (shape, dtype, init)
        self._buffer_specs: dict[str, tuple] = {}  # suffix -> (shape, dtype, initial value)
        self._nodes: dict[str, Node] = {}          # full name -> leaf (cached: keeps the init metadata)
        self._updates: dict[str, Node] = {}        # buffer name -> new value, from the last training call

    # -- naming ------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    def _rename(self, name: str) -> None:
        """Give an unnamed module a (container-assigned) name."""
        if not self._named:
            self._name = name
            self._nodes.clear()
            self._after_rename()

    def _after_rename(self) -> None:
        pass

    # -- parameters and buffers -------------------------------------------------------------------------------
    def _declare_param(self, suffix: str, shape: tuple, dtype: str, init) -> None:
        self._param_specs[suffix] = (tuple(shape), dtype, _init.resolve(init))

    def _declare_buffer(self, suffix: str, shape: tuple, dtype: str, value: float) -> None:
        self._buffer_specs[suffix] = (tuple(shape), dtype, value)

    def param(self, suffix: str) -> Node:
        """The parameter leaf ``<name>_<suffix>``."""
        full = f"{self.name}_{suffix}"
        if full not in self._nodes:
            shape, dtype, init = self._param_specs[suffix]
            self._nodes[full] = sd.param(full, shape, dtype, init=init)
        return self._nodes[full]

    def buffer(self, suffix: str) -> Node:
        """The buffer input leaf ``<name>_<suffix>``."""
        full = f"{self.name}_{suffix}"
        if full not in self._nodes:
            shape, dtype, _ = self._buffer_specs[suffix]
            self._nodes[full] = sd.input(full, shape, dtype)
        return self._nodes[full]

    def children(self) -> list["Module"]:
        return []

    def modules(self) -> Iterator["Module"]:
        """This module and all its descendants, depth first."""
        yield self
        for c in self.children():
            yield from c.modules()

    def _collect(self, kind: str) -> list[Node]:
        out: list[Node] = []
        owner: dict[str, Module] = {}
        for m in self.modules():
            specs = m._param_specs if kind == "param" else m._buffer_specs
            for suffix in specs:
                leaf = m.param(suffix) if kind == "param" else m.buffer(suffix)
                if leaf.name in owner:
                    if owner[leaf.name] is m:
                        continue
                    raise ValueError(f"two modules named {m.name!r} both own {kind} {leaf.name!r}; give them distinct names")
                owner[leaf.name] = m
                out.append(leaf)
        return out

    def params(self) -> list[Node]:
        """The trainable parameter leaves of this module and its children, in order."""
        return self._collect("param")

    def buffers(self) -> list[Node]:
        """The buffer input leaves (running statistics) of this module and its children."""
        return self._collect("buffer")

    def init_values(self, seed: int = 0, buffers: bool = True) -> dict[str, np.ndarray]:
        """``{name: array}``: seeded initial values of the parameters (see :mod:`symdiff.nn.init`),
        plus the initial buffer values (running mean 0, running variance 1) unless ``buffers=False``."""
        vals = _init.init_values(self.params(), seed)
        if buffers:
            for m in self.modules():
                for suffix, (shape, dtype, value) in m._buffer_specs.items():
                    vals[m.buffer(suffix).name] = np.full(shape, value, dtype=dtype)
        return vals

    def state_updates(self) -> dict[str, Node]:
        """``{buffer name: new value node}`` built by the last training-mode call (batch norm's
        momentum update of its running statistics); empty for evaluation graphs."""
        out: dict[str, Node] = {}
        for m in self.modules():
            out.update(m._updates)
        return out

    # -- modes and calls ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def forward(self, *args):
        raise NotImplementedError

    def __call__(self, *args):
        return self.forward(*args)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        inner = self.extra_repr()
        return f"{type(self).__name__}({inner + ', ' if inner else ''}name={self.name!r})"


class Linear(Module):
    """``y = x @ W + b`` with ``W``: (in_features, out_features) (Kaiming normal), ``b``: (out,) (zeros)."""

    kind = "linear"

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init="kaiming",
                 bias_init="zeros", dtype: str = "float32", name: Optional[str] = None) -> None:
        super().__init__(name)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._declare_param("W", (self.in_features, self.out_features), dtype, init)
        if bias:
            self._declare_param("b", (self.out_features,), dtype, bias_init)

    @property
    def W(self) -> Node:
        return self.param("W")

    @property
    def b(self) -> Optional[Node]:
        return self.param("b") if "b" in self._param_specs else None

    def forward(self, x: Node) -> Node:
        y = sd.matmul(x, self.W)
        return y if self.b is None else sd.add(y, self.b)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={'b' in self._param_specs}"


class _Elementwise(Module):
    fn = staticmethod(lambda x: x)

    def forward(self, x: Node) -> Node:
        return type(self).fn(x)


class ReLU(_Elementwise):
    """max(x, 0) elementwise."""
    kind = "relu"
    fn = staticmethod(sd.relu)


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)) elementwise."""
    kind = "sigmoid"
    fn = staticmethod(sd.sigmoid)


class Tanh(_Elementwise):
    """tanh(x) elementwise."""
    kind = "tanh"
    fn = staticmethod(sd.tanh)


class Identity(_Elementwise):
    kind = "identity"


class Flatten(Module):
    """Merge the axes ``start_dim..end_dim`` (PyTorch's defaults 1, -1): (N, d1, d2, ...) -> (N, d1 * d2 * ...)."""
    kind = "flatten"

    def __init__(self, start_dim: int = 1, end_dim: int = -1, name: Optional[str] = None) -> None:
        super().__init__(name)
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Node) -> Node:
        if x.ndim <= 1:
            return x
        a, b = self.start_dim % x.ndim, self.end_dim % x.ndim
        if not (-x.ndim <= self.start_dim < x.ndim and -x.ndim <= self.end_dim < x.ndim) or a > b:
            raise ValueError(f"Flatten {self.name!r}: start_dim={self.start_dim}, end_dim={self.end_dim} do not fit "
                             f"an input of shape {x.shape}")
        merged = _dims.prod(x.shape[a:b + 1])  # a Dim when a merged axis is symbolic
        return sd.reshape(x, x.shape[:a] + (merged,) + x.shape[b + 1:])

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Softmax(Module):
    """exp(x) / sum(exp(x)) along ``axis``."""
    kind = "softmax"

    def __init__(self, axis: int = -1, name: Optional[str] = None) -> None:
        super().__init__(name)
        self.axis = axis

    def forward(self, x: Node) -> Node:
        return sd.softmax(x, axis=self.axis)


class LogSoftmax(Softmax):
    """x - logsumexp(x) along ``axis`` (the lecture's LogSoftMax)."""
    kind = "log_softmax"

    def forward(self, x: Node) -> Node:
        return sd.log_softmax(x, axis=self.axis)


class Duplicate(Module):
    """The lecture's fan-out ``y1 = x, y2 = x``: returns ``n`` references to ``x``. In backward the
    branch gradients are summed (autodiff does this at every node with several users)."""
    kind = "duplicate"

    def __init__(self, n: int = 2, name: Optional[str] = None) -> None:
        super().__init__(name)
        self.n = int(n)

    def forward(self, x: Node) -> tuple:
        return (x,) * self.n


class _Fold(Module):
    """A binary elementwise op folded over two or more inputs."""
    op = staticmethod(sd.add)
    need = "at least two inputs"

    def forward(self, *xs: Node) -> Node:
        if len(xs) < 2:
            raise TypeError(f"{type(self).__name__}: expected {self.need}")
        y = xs[0]
        for x in xs[1:]:
            y = self.op(y, x)
        return y


class Add(_Fold):
    """``y = x1 + x2 (+ ...)``; backward copies the gradient to every input."""
    kind = "add"
    op = staticmethod(sd.add)


class Max(_Fold):
    """Elementwise ``y = max(x1, x2, ...)``; backward routes the gradient to the larger input
    (split equally between exact ties, SymPy's derivative of Max)."""
    kind = "max"
    op = staticmethod(sd.maximum)
    need = "at least two inputs (for a reduction use sd.max(x, axis))"


class Dropout(Module):
    """Inverted dropout: in training mode ``x * [u >= p] / (1 - p)``; in evaluation mode the identity.

    ``u`` comes from the ``rand_uniform`` op (see :mod:`symdiff.ops_random`) with stream
    ``crc32(name)``, seeded by the graph inputs ``rng_seed`` and ``rng_step`` (or the given ``seed`` /
    ``step`` tensors): one call of a compiled training step draws a fresh mask per step, the same one
    in forward and backward, and identical on every backend.
    """
    kind = "dropout"

    def __init__(self, p: float = 0.5, name: Optional[str] = None, seed: Optional[Node] = None,
                 step: Optional[Node] = None) -> None:
        super().__init__(name)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.seed, self.step = seed, step

    @property
    def stream(self) -> int:
        return zlib.crc32(self.name.encode()) & 0xFFFFFFFF

    def forward(self, x: Node) -> Node:
        return F.dropout(x, self.p, self.seed, self.step, self.stream, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BatchNorm1d(Module):
    """Batch normalisation over the batch axis of (N, C) inputs (and the length axis of (N, C, L)).

    Training mode: ``y = (x - mean_B) / sqrt(var_B + eps) * gamma + beta`` with the batch mean and
    biased batch variance (the gradient flows through both), and records the updates
    ``running_mean <- (1 - momentum) * running_mean + momentum * mean_B`` and
    ``running_var <- (1 - momentum) * running_var + momentum * var_B * N / (N - 1)`` (unbiased, as
    PyTorch; ``N``: the number of values per channel) in :meth:`state_updates`. Evaluation mode: the
    same formula with the running statistics, which are graph inputs ``<name>_running_mean`` /
    ``<name>_running_var``.
    """
    kind = "bn"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, dtype: str = "float32",
                 name: Optional[str] = None) -> None:
        super().__init__(name)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        c = (self.num_features,)
        self._declare_param("gamma", c, dtype, "ones")
        self._declare_param("beta", c, dtype, "zeros")
        self._declare_buffer("running_mean", c, dtype, 0.0)
        self._declare_buffer("running_var", c, dtype, 1.0)

    ranks = {2: "(N, C)", 3: "(N, C, L)"}  # accepted input ranks (statistics over all axes but C)

    def forward(self, x: Node) -> Node:
        if x.ndim not in self.ranks or x.shape[1] != self.num_features:
            want = " or ".join(r.replace("C", str(self.num_features)) for r in self.ranks.values())
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected {want} input, got shape {x.shape}")
        gamma, beta = self.param("gamma"), self.param("beta")
        rm, rv = self.buffer("running_mean"), self.buffer("running_var")
        if not self.training:
            self._updates = {}
            return F.batch_norm_eval(x, gamma, beta, rm, rv, self.eps)
        y, mean, var = F.batch_norm_train(x, gamma, beta, self.eps)
        n = _dims.prod(x.shape) // self.num_features  # samples per channel statistic
        if isinstance(n, _dims.Dim):  # the call's count: var * n / max(n - 1, 1) (n = 1 keeps var, as below)
            count = axis_size(x, tuple(a for a in range(x.ndim) if a != 1), var.dtype)
            unbiased = sd.multiply(var, sd.divide(count, sd.maximum(sd.subtract(count, 1.0), 1.0)))
        else:
            unbiased = sd.multiply(var, n / (n - 1)) if n > 1 else var
        self._updates = {rm.name: F.running_update(rm, mean, self.momentum),
                         rv.name: F.running_update(rv, unbiased, self.momentum)}
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Sequential(Module):
    """Apply modules in order. A module returning a tuple (``Duplicate``) feeds the next one's arguments."""
    kind = "seq"

    def __init__(self, *modules: Module, name: Optional[str] = None) -> None:
        super().__init__(name)
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])
        for m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: expected Modules, got {type(m).__name__}")
        self.layers = list(modules)
        self._after_rename()

    def _after_rename(self) -> None:
        for i, m in enumerate(self.layers):
            m._rename(f"{self.name}_{i}")

    def children(self) -> list[Module]:
        return list(self.layers)

    def forward(self, *xs):
        out = xs if len(xs) != 1 else xs[0]
        for m in self.layers:
            out = m(*out) if isinstance(out, tuple) else m(out)
        return out

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        body = "".join(f"\n  ({i}): " + repr(m).replace("\n", "\n  ") for i, m in enumerate(self.layers))
        return f"Sequential(name={self.name!r}){body}"


__all__ = ["Module", "Linear", "ReLU", "Sigmoid", "Tanh", "Identity", "Flatten", "Softmax", "LogSoftmax",
           "Duplicate", "Add", "Max", "Dropout", "BatchNorm1d", "Sequential"]

"""Parameter initialisers and the seeded initialisation of a graph's parameters.

An initialiser is a callable ``init(shape, rng) -> np.ndarray`` (``rng``: a ``np.random.Generator``),
the form ``sd.param(..., init=...)`` stores. Weight matrices are laid out ``(fan_in, fan_out)``
(``Linear`` computes ``x @ W + b``); weights of rank >= 3 are convolution kernels in PyTorch's layout
``(out, in/groups, *kernel)``, so ``fan_in = in/groups * prod(kernel)`` (see :func:`fans`, :func:`conv_fans`).

- :func:`kaiming_normal` (He): N(0, 2 / fan_in), for ReLU networks (keeps the activation variance
  constant through the layers, the lecture's "Kaiming trick");
- :func:`xavier_uniform` (Glorot): U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), variance
  2 / (fan_in + fan_out), for tanh/sigmoid networks;
- :func:`zeros`, :func:`ones` (biases, batch-norm shift / scale).

:func:`init_values` draws every parameter of a module or graph reproducibly: parameter ``name`` is
drawn from ``np.random.default_rng([seed, crc32(name)])``, so a parameter's initial value depends only
on the seed and its name (not on the order parameters are visited or on what else is in the model).
"""
from __future__ import annotations

import functools
import zlib
from typing import Callable, Iterable, Optional, Union

import numpy as np

from ..ir import Node, toposort

Initializer = Callable[[tuple, np.random.Generator], np.ndarray]


def fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a parameter from its shape alone: ``(in, out)`` for a matrix (Linear's
    layout), both ``n`` for a vector, and for rank >= 3 a conv kernel ``(O, C/G, *K)`` (PyTorch's
    layout and ``_calculate_fan_in_and_fan_out``): ``(C/G * prod(K), O * prod(K))``. The fan-in is exact
    for any ``groups``; :func:`conv_fans` also divides the fan-out by the groups."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    return shape[1] * receptive, shape[0] * receptive


def conv_fans(shape: tuple, groups: int = 1, transposed: bool = False) -> tuple[int, int]:
    """(fan_in, fan_out) of a convolution weight, counting the connections of one unit.

    ``conv`` weight ``(O, C/G, *K)``: an output unit reads ``C/G * prod(K)`` inputs, an input unit feeds
    ``O/G * prod(K)`` outputs. ``conv_transpose`` weight ``(C_in, C_out/G, *K)``: an output unit reads
    (at stride 1) ``C_in/G * prod(K)`` inputs, an input unit feeds ``C_out/G * prod(K)``. (PyTorch's
    ``_calculate_fan_in_and_fan_out`` reads the layout as ``(out, in)`` for both and ignores the groups in
    the fan-out: it gives the transposed conv ``fan_in = C_out/G * prod(K)``.)
    """
    shape, g = tuple(int(s) for s in shape), int(groups)
    receptive = int(np.prod(shape[2:], dtype=np.int64))
    if transposed:
        return shape[0] // g * receptive, shape[1] * receptive
    return shape[1] * receptive, shape[0] // g * receptive


def kaiming_normal(shape, rng: np.random.Generator, fan_in: Optional[int] = None, gain: float = 2.0) -> np.ndarray:
    """He / Kaiming normal: N(0, std**2) with std = sqrt(gain / fan_in) (gain 2 for ReLU)."""
    fi = fans(shape)[0] if fan_in is None else fan_in
    return rng.standard_normal(tuple(shape)) * np.sqrt(gain / fi)


def xavier_uniform(shape, rng: np.random.Generator, gain: float = 1.0, fan_in: Optional[int] = None,
                   fan_out: Optional[int] = None) -> np.ndarray:
    """Glorot / Xavier uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fi, fo = fans(shape)
    fi, fo = fi if fan_in is None else fan_in, fo if fan_out is None else fan_out
    a = gain * np.sqrt(6.0 / (fi + fo))
    return rng.uniform(-a, a, tuple(shape))


def zeros(shape, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    return np.zeros(tuple(shape))


def ones(shape, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    return np.ones(tuple(shape))


INITIALIZERS = {"kaiming": kaiming_normal, "kaiming_normal": kaiming_normal, "he": kaiming_normal,
                "xavier": xavier_uniform, "xavier_uniform": xavier_uniform, "glorot": xavier_uniform,
                "zeros": zeros, "ones": ones}


def resolve(init: Union[str, Initializer, np.ndarray, None]) -> Union[Initializer, np.ndarray, None]:
    """An initialiser given by name ("kaiming", "xavier", "zeros", "ones"), callable or array."""
    if isinstance(init, str):
        try:
            return INITIALIZERS[init]
        except KeyError:
            raise ValueError(f"unknown initialiser {init!r}; choose one of {sorted(INITIALIZERS)}") from None
    return init


def with_fans(init, shape: tuple, fan_in: int, fan_out: int):
    """``init`` (a name, callable or array) for a weight of ``shape`` whose true fans are
    ``(fan_in, fan_out)``: the name itself where :func:`fans` of the shape already gives them (so the
    parameter's ``init`` stays a plain, saveable name), else Kaiming / Xavier bound to these fans."""
    f = resolve(init)
    if f is kaiming_normal and fans(shape)[0] != fan_in:
        return functools.partial(kaiming_normal, fan_in=int(fan_in))
    if f is xavier_uniform and fans(shape) != (fan_in, fan_out):
        return functools.partial(xavier_uniform, fan_in=int(fan_in), fan_out=int(fan_out))
    return init


def param_rng(seed: int, name: str) -> np.random.Generator:
    """The generator parameter ``name`` is drawn from: ``np.random.default_rng([seed, crc32(name)])``."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def initial_value(p: Node, seed: int = 0) -> np.ndarray:
    """The initial value of one ``sd.param`` leaf from its ``init`` metadata.

    ``init`` may be an array (copied), a callable ``init(shape, rng)``, a name, or None (None: Kaiming
    normal for tensors of rank >= 2, zeros for vectors and scalars).
    """
    if p.op != "param":
        raise TypeError(f"initial_value: expected an sd.param leaf, got a {p.op} node")
    init = resolve(p.meta.get("init"))
    if init is None:
        init = kaiming_normal if p.ndim >= 2 else zeros
    if callable(init):
        v = np.asarray(init(p.shape, param_rng(seed, p.name)))
    else:
        v = np.array(init)
    if v.shape != p.shape:
        try:
            v = np.broadcast_to(v, p.shape)
        except ValueError:
            raise ValueError(f"initialiser of param {p.name!r} returned shape {v.shape}, expected {p.shape}") from None
    return np.array(v, dtype=p.dtype)  # an owned, writable, contiguous copy


def init_values(graph_or_params: Union[Node, Iterable[Node]], seed: int = 0) -> dict[str, np.ndarray]:
    """``{name: initial value}`` for every ``sd.param`` leaf of a graph (outputs) or list of params."""
    nodes = [graph_or_params] if isinstance(graph_or_params, Node) else list(graph_or_params)
    out: dict[str, np.ndarray] = {}
    for n in toposort(nodes):
        if n.op == "param" and n.name not in out:
            out[n.name] = initial_value(n, seed)
    return out


__all__ = ["kaiming_normal", "xavier_uniform", "zeros", "ones", "fans", "conv_fans", "with_fans", "init_values",
           "initial_value", "param_rng", "resolve"]

"""Batching as a graph-to-graph transform: :func:`batch` and ``sd.vmap``.

``batch(outputs, subst, size)`` rewrites a per-example graph into one graph over a batch: every leaf ``l``
in ``subst`` is replaced by ``subst[l]``, a tensor of shape ``(size,) + l.shape``, and each output gets a
leading batch axis, ``out[b] == outputs evaluated with every l set to subst[l][b]``. One walk in
topological order tracks which nodes depend on a substituted leaf ("batched", the batch axis kept at 0);
those are rebuilt by their op's rule (``symdiff/batching_rules.py``), the others are reused as they are
(shared, not copied: a parameter and everything computed from parameters alone stays unbatched).

``sd.vmap(fn, in_axes, out_axes)(*tensors)`` calls ``fn`` once on per-example placeholder leaves and batches
the graph it returns with the placeholders replaced by the tensors (their mapped axis moved to 0). Since
``fn`` may differentiate (``sd.grad``), per-example gradients are one batched graph. See docs/batching.md.
"""
from __future__ import annotations

import itertools
import numbers
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from . import dims as _dims
from .batching_rules import rule_for
from .ir import Node, toposort
from .ops_tensor import broadcast_to, transpose

__all__ = ["batch", "batch_with_flags", "vmap"]

Axes = Union[int, None, Sequence[Optional[int]]]


def _describe(n: Node) -> str:
    return f"{n.name!r}" if n.name else f"<{n.op} node>"


def _check_subst(subst: Mapping[Node, Node], size: int) -> None:
    for leaf, rep in subst.items():
        if not isinstance(leaf, Node) or not isinstance(rep, Node):
            raise TypeError(f"batch: subst must map symdiff tensors to symdiff tensors, got "
                            f"{type(leaf).__name__} -> {type(rep).__name__}")
        want = (size,) + leaf.shape
        if rep.shape != want or rep.dtype != leaf.dtype:
            raise ValueError(f"batch: the replacement of {_describe(leaf)} ({leaf.dtype}{list(leaf.shape)}) must be "
                             f"{leaf.dtype}{list(want)} (a leading batch axis of size {size}), got "
                             f"{rep.dtype}{list(rep.shape)}")


def batch_with_flags(outputs: Sequence[Node], subst: Mapping[Node, Node], size: int) -> tuple[list, list]:
    """As :func:`batch`, without broadcasting the unbatched outputs: ``(nodes, batched)`` where a node whose
    ``batched`` flag is False is the original output (it does not depend on any substituted leaf)."""
    if isinstance(size, (str, _dims.Dim)):  # a symbolic batch: sd.dim("batch") or its name
        size = _dims.as_dim(size)
    elif not isinstance(size, numbers.Integral) or isinstance(size, bool) or size < 0:
        raise ValueError(f"batch: size must be a non-negative int or a dimension name, got {size!r}")
    else:
        size = int(size)
    outputs = list(outputs)
    for o in outputs:
        if not isinstance(o, Node):
            raise TypeError(f"batch: outputs must be symdiff tensors, got {type(o).__name__}")
    _check_subst(subst, size)
    memo: dict[Node, Node] = {}
    flag: dict[Node, bool] = {}
    for n in toposort(outputs):
        rep = subst.get(n)
        if rep is not None:
            memo[n], flag[n] = rep, True
            continue
        flags = [flag[i] for i in n.inputs]
        if not any(flags):
            memo[n], flag[n] = n, False  # independent of the batch: reused as it is
            continue
        new = rule_for(n.op)(n, [memo[i] for i in n.inputs], flags)
        if new.shape != (size,) + n.shape or new.dtype != n.dtype:
            raise AssertionError(f"batch: the {n.op} rule gave {new.dtype}{list(new.shape)} for a node of "
                                 f"{n.dtype}{list(n.shape)} (expected {n.dtype}{[size, *n.shape]})")
        memo[n], flag[n] = new, True
    return [memo[o] for o in outputs], [flag[o] for o in outputs]


def batch(outputs: Sequence[Node], subst: Mapping[Node, Node], size: int) -> list[Node]:
    """Each of ``outputs`` over a batch of ``size``: ``subst`` maps leaves to replacements with a leading batch
    axis (``(size,) + leaf.shape``, the leaf's dtype); ``result[k][b]`` is ``outputs[k]`` with every such leaf
    ``l`` set to ``subst[l][b]``. Outputs that depend on no substituted leaf are broadcast to the batch."""
    nodes, flags = batch_with_flags(outputs, subst, size)
    return [n if f else broadcast_to(n, (size,) + n.shape) for n, f in zip(nodes, flags)]


# -- vmap ------------------------------------------------------------------------------------------------------------

_COUNTER = itertools.count()  # unique placeholder names: vmap<k>_arg<i>


def _axis_spec(what: str, spec: Axes, count: int, allow_none: bool) -> list:
    """``in_axes`` / ``out_axes`` as one entry per argument / output."""
    if isinstance(spec, (tuple, list)):
        if len(spec) != count:
            raise ValueError(f"vmap: {what} has {len(spec)} entries but there are {count} "
                             f"{'arguments' if what == 'in_axes' else 'outputs'} ({what}={tuple(spec)!r})")
        items = list(spec)
    else:
        items = [spec] * count
    for k, a in enumerate(items):
        ok = a is None if allow_none else False
        if not ok and (not isinstance(a, numbers.Integral) or isinstance(a, bool)):
            kinds = "an int, None, or a tuple of them" if allow_none else "an int or a tuple of ints"
            raise TypeError(f"vmap: {what}[{k}] must be {kinds}, got {a!r}")
    return items


def _normalize(what: str, k: int, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"vmap: {what}[{k}]={axis} is out of bounds for a tensor of rank {ndim}")
    return axis % ndim


def _as_tensor(arg: Any, k: int) -> Node:
    if isinstance(arg, Node):
        return arg
    if isinstance(arg, (np.ndarray, np.generic, list, tuple, numbers.Number)) and not isinstance(arg, bool):
        from .api import as_tensor  # noqa: PLC0415  (api builds the DSL; this module is below it)
        return as_tensor(np.asarray(arg))
    raise TypeError(f"vmap: argument {k} is mapped (in_axes[{k}] is an int) but is a {type(arg).__name__}, not a "
                    f"tensor; pass in_axes=None for it to pass it through unchanged")


def _move_axis(x: Node, src: int, dst: int) -> Node:
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return transpose(x, tuple(perm))


def vmap(fn: Callable, in_axes: Axes = 0, out_axes: Union[int, None, Sequence[Optional[int]]] = 0) -> Callable:
    """Vectorize ``fn`` over an axis of its arguments, as ``jax.vmap``: ``sd.vmap(fn)(*tensors)`` is ``fn``
    applied to every slice ``tensors[i][b]`` (along ``in_axes``), stacked along ``out_axes`` -- built as ONE
    batched graph, not ``B`` copies.

    ``in_axes``: an int (every argument mapped along it), None (not mapped: passed through as is), or a tuple
    with one int/None per argument. ``out_axes``: an int or one per output (None: that output must not depend
    on a mapped argument). ``fn`` returns a tensor or a tuple/list of tensors; it may call ``sd.grad``, so
    ``sd.vmap(lambda x, y: sd.grad(loss(x, y), W))(X, Y)`` gives per-example gradients of shape (B, *W.shape).
    """
    if not callable(fn):
        raise TypeError(f"vmap: fn must be callable, got {type(fn).__name__}")
    name = getattr(fn, "__name__", "fn")

    def batched_fn(*args: Any, **kwargs: Any):
        if kwargs:
            raise TypeError(f"vmap({name}): keyword arguments are not supported ({', '.join(kwargs)}); pass the "
                            f"tensors positionally and use in_axes")
        axes = _axis_spec("in_axes", in_axes, len(args), allow_none=True)
        tag = next(_COUNTER)
        call_args, subst, size, first = [], {}, None, None
        for k, (arg, ax) in enumerate(zip(args, axes)):
            if ax is None:
                call_args.append(arg)
                continue
            t = _as_tensor(arg, k)
            if t.ndim == 0:
                raise ValueError(f"vmap({name}): argument {k} is a 0-d tensor; it has no axis {ax} to map over "
                                 f"(use in_axes=None for it)")
            ax = _normalize("in_axes", k, ax, t.ndim)
            n = t.shape[ax]
            if size is None:
                size, first = n, (k, ax, t.shape)
            elif n != size:
                raise ValueError(f"vmap({name}): mapped axes have different sizes: argument {first[0]} has size "
                                 f"{size} along axis {first[1]} (shape {first[2]}) but argument {k} has size {n} "
                                 f"along axis {ax} (shape {t.shape})")
            from .api import input as _input  # noqa: PLC0415
            ph = _input(f"vmap{tag}_arg{k}", t.shape[:ax] + t.shape[ax + 1:], t.dtype)
            subst[ph] = _move_axis(t, ax, 0)
            call_args.append(ph)
        if size is None:
            raise ValueError(f"vmap({name}): no argument is mapped (in_axes={in_axes!r} for {len(args)} "
                             f"argument(s)); at least one must have an int in_axes")
        out = fn(*call_args)
        single = isinstance(out, Node)
        if not single and not (isinstance(out, (tuple, list)) and all(isinstance(o, Node) for o in out)):
            got = type(out).__name__ if not isinstance(out, (tuple, list)) else \
                f"a {type(out).__name__} holding {', '.join(sorted({type(o).__name__ for o in out}))}"
            raise TypeError(f"vmap({name}): fn must return a symdiff tensor or a tuple/list of them, got {got}")
        outs = [out] if single else list(out)
        oaxes = _axis_spec("out_axes", out_axes, len(outs), allow_none=True)
        nodes, flags = batch_with_flags(outs, subst, size)
        results = []
        for k, (y, f, ax) in enumerate(zip(nodes, flags, oaxes)):
            if ax is None:
                if f:
                    raise ValueError(f"vmap({name}): out_axes[{k}] is None but output {k} depends on a mapped "
                                     f"argument (shape {y.shape[1:]} per example)")
                results.append(y)
                continue
            y = y if f else broadcast_to(y, (size,) + y.shape)
            results.append(_move_axis(y, 0, _normalize("out_axes", k, ax, y.ndim)))
        return results[0] if single else type(out)(results)

    batched_fn.__name__ = f"vmap_{name}"
    batched_fn.__doc__ = f"{name} vectorized by sd.vmap (in_axes={in_axes!r}, out_axes={out_axes!r})"
    return batched_fn

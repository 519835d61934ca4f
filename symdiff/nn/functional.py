"""Stateless building blocks behind the modules: dropout and batch normalisation as graph functions."""
from __future__ import annotations

import numbers

from .. import api as sd
from ..ir import Node, apply
from ..ops_random import rand_uniform

SEED_INPUT = "rng_seed"  # int64 scalar input: the run's random seed
STEP_INPUT = "rng_step"  # int64 scalar input: the training step (a new dropout mask every step)


def rng_inputs() -> tuple[Node, Node]:
    """The graph inputs random ops read: ``rng_seed`` and ``rng_step``, int64 scalars (shared by all layers)."""
    return sd.input(SEED_INPUT, (), "int64"), sd.input(STEP_INPUT, (), "int64")


def keep_mask(shape, p: float, seed, step, stream: int = 0, dtype: str = "float32") -> Node:
    """1.0 where ``rand_uniform(seed, step; shape, stream) >= p``, else 0.0 (P(keep) = 1 - p)."""
    u = rand_uniform(seed, step, shape, dtype, stream)
    # step(p - u) is 1 exactly where u < p (H(0) = 0), so 1 - step(p - u) is [u >= p]
    return sd.subtract(1.0, apply("step", [sd.subtract(p, u)]))


def dropout(x: Node, p: float, seed=None, step=None, stream: int = 0, training: bool = True,
            mask_shape=None) -> Node:
    """Inverted dropout: ``x * [u >= p] / (1 - p)`` with ``u = rand_uniform(seed, step; x.shape, stream)``.

    ``mask_shape``: a shape that broadcasts to ``x.shape`` (default ``x.shape``): ``(N, C, 1, 1)`` drops
    whole channels (``Dropout2d``).

    Identity when ``training`` is False or ``p == 0``. ``seed``/``step`` default to the shared
    ``rng_seed``/``rng_step`` graph inputs. The mask is a node of the graph: the backward pass
    multiplies by the same node, so forward and backward use the same mask without storing it.
    """
    if not isinstance(p, numbers.Real) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1), got {p!r}")
    if not training or p == 0:
        return x
    if seed is None or step is None:
        s, t = rng_inputs()
        seed = s if seed is None else seed
        step = t if step is None else step
    mask = keep_mask(x.shape if mask_shape is None else tuple(mask_shape), float(p), seed, step, stream, x.dtype)
    return sd.multiply(x, sd.multiply(mask, 1.0 / (1.0 - float(p))))


def stat_axes(x: Node) -> tuple:
    """The axes batch norm averages over: the batch axis of (N, C), all but the channel axis of (N, C, *S)."""
    return (0,) if x.ndim <= 2 else (0,) + tuple(range(2, x.ndim))


def channel_view(x: Node, v: Node) -> Node:
    """A per-channel vector ``v`` (C,) shaped to broadcast against ``x`` (N, C, *S): (C, 1, ..., 1)."""
    return v if x.ndim <= 2 else sd.reshape(v, (v.shape[0],) + (1,) * (x.ndim - 2))


def batch_norm_train(x: Node, gamma: Node, beta: Node, eps: float = 1e-5) -> tuple[Node, Node, Node]:
    """Batch normalisation with the statistics of the batch; returns (y, mean, biased variance), the
    statistics of shape (C,).

    y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel: over axis 0 of (N, C), over the axes
    (0, 2, ...) of (N, C, *S) (BatchNorm2d). The gradient flows through mean and var.
    """
    keep = x.ndim > 2
    mean = sd.mean(x, axis=stat_axes(x) if keep else 0, keepdims=keep)
    xc = sd.subtract(x, mean)
    var = sd.mean(sd.square(xc), axis=stat_axes(x) if keep else 0, keepdims=keep)
    inv = sd.divide(1.0, sd.sqrt(sd.add(var, eps)))
    y = sd.add(sd.multiply(sd.multiply(xc, inv), channel_view(x, gamma)), channel_view(x, beta))
    if keep:
        c = (x.shape[1],)
        mean, var = sd.reshape(mean, c), sd.reshape(var, c)
    return y, mean, var


def batch_norm_eval(x: Node, gamma: Node, beta: Node, running_mean: Node, running_var: Node,
                    eps: float = 1e-5) -> Node:
    """Batch normalisation with fixed (running) statistics (per channel, as :func:`batch_norm_train`)."""
    inv = sd.divide(1.0, sd.sqrt(sd.add(running_var, eps)))
    xc = sd.subtract(x, channel_view(x, running_mean))
    return sd.add(sd.multiply(sd.multiply(xc, channel_view(x, inv)), channel_view(x, gamma)), channel_view(x, beta))


def running_update(old: Node, batch_stat: Node, momentum: float) -> Node:
    """``(1 - momentum) * old + momentum * batch_stat`` (PyTorch's convention)."""
    return sd.add(sd.multiply(old, 1.0 - momentum), sd.multiply(batch_stat, momentum))


__all__ = ["dropout", "keep_mask", "rng_inputs", "stat_axes", "channel_view", "batch_norm_train", "batch_norm_eval",
           "running_update", "SEED_INPUT", "STEP_INPUT"]

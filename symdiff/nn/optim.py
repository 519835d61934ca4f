"""Optimizer steps as graphs: forward, backward and the parameter update compile into one kernel.

``updates = sgd(loss, params, lr, momentum, weight_decay)`` returns ``{input name: new value}``: the
new value of every parameter and, with momentum, of its velocity buffer (an input leaf named
``<param>__mom``). Compile ``[loss, *updates.values()]``; one call is one whole training step, and the
caller feeds each output back in as the input of the same name for the next step.

The update (PyTorch's SGD): ``g = dloss/dp + weight_decay * p``; with momentum
``v <- momentum * v + g`` and ``p <- p - lr * v``; without, ``p <- p - lr * g``.
``lr`` is a Python float (baked into the kernel) or a float scalar graph input (a schedule is fed per
step without recompiling).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Union

import numpy as np

from .. import api as sd
from ..autodiff import grad
from ..ir import Node
from .modules import Module

MOMENTUM_SUFFIX = "__mom"


class Updates(dict):
    """``{input name: node of its new value}`` (an ordinary dict) with the optimizer's extra state."""

    def initial_state(self) -> dict[str, np.ndarray]:
        """Zeros for the optimizer buffers (momentum velocities) this step reads."""
        return {n.name: np.zeros(n.shape, n.dtype) for n in getattr(self, "buffers", [])}


def sgd(loss: Node, params: Union[Module, Iterable[Node]], lr: Union[float, Node], momentum: float = 0.0,
        weight_decay: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
        clip_norm: Optional[float] = None, clip_value: Optional[float] = None) -> Updates:
    """One SGD step as a graph: ``{param name: new param, param__mom: new velocity, ...}``. With
    ``dampening``, ``nesterov`` or clipping it is ``symdiff.nn.optimizers.sgd_full`` (PyTorch's SGD with
    a step count, buffers ``<param>__momentum_buffer``)."""
    if dampening or nesterov or clip_norm is not None or clip_value is not None:
        from .optimizers import sgd_full
        return sgd_full(loss, params, lr, momentum, dampening, weight_decay, nesterov, clip_norm, clip_value)
    from .optimizers import check_lr, check_params
    ps = check_params("sgd", params)
    lr = check_lr("sgd", lr)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"sgd: momentum must be in [0, 1), got {momentum}")
    grads = grad(loss, ps)
    updates = Updates()
    buffers = []
    new_vel = {}
    for p, g in zip(ps, grads):
        lr_p = sd.astype(lr, p.dtype) if isinstance(lr, Node) else lr
        if weight_decay:
            g = sd.add(g, sd.multiply(p, float(weight_decay)))
        if momentum:
            v = sd.input(p.name + MOMENTUM_SUFFIX, p.shape, p.dtype)
            buffers.append(v)
            g = sd.add(sd.multiply(v, float(momentum)), g)
            new_vel[v.name] = g
        updates[p.name] = sd.subtract(p, sd.multiply(g, lr_p))
    updates.update(new_vel)
    updates.buffers = buffers
    return updates


# -- learning-rate schedules: callables epoch -> lr ------------------------------------------------------------

def exponential_decay(lr0: float, gamma: float) -> Callable[[int], float]:
    """``lr(epoch) = lr0 * gamma**epoch``."""
    return lambda epoch: lr0 * gamma ** epoch


def step_decay(lr0: float, factor: float, every: int) -> Callable[[int], float]:
    """``lr(epoch) = lr0 * factor**(epoch // every)``."""
    return lambda epoch: lr0 * factor ** (epoch // every)


def cosine_decay(lr0: float, epochs: int, lr_min: float = 0.0) -> Callable[[int], float]:
    """Cosine annealing from ``lr0`` to ``lr_min`` over ``epochs``."""
    return lambda epoch: lr_min + 0.5 * (lr0 - lr_min) * (1 + np.cos(np.pi * min(epoch, epochs) / epochs))


__all__ = ["sgd", "Updates", "exponential_decay", "step_decay", "cosine_decay", "MOMENTUM_SUFFIX"]

"""Adam-family optimizers as graphs: forward, backward and the update of every parameter and state buffer
compile into one kernel (one call per training step).

Every optimizer follows the protocol of :func:`symdiff.nn.optim.sgd`: it returns an
:class:`~symdiff.nn.optim.Updates` dict ``{input name: node of its new value}`` covering every parameter
and every state buffer (moments, the step count), and ``updates.initial_state()`` gives the starting
array of each buffer. Compile ``[loss, *updates.values()]`` and feed each output back as the input of
the same name. Buffers are ``sd.input`` leaves named ``<param>__<state>``; the step count ``<prefix>__step``
is one float scalar per optimizer.

The formulas are PyTorch's code (torch.optim, 2.x, the single-tensor path), with its keyword names and
defaults. ``g`` is the gradient after clipping; ``t`` the step number (1 on the first step):

- ``adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False)``: ``g += wd p``;
  ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``; ``vmax = max(vmax, v)`` (amsgrad);
  ``p -= (lr / (1 - b1^t)) m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)``. Note where eps goes: PyTorch adds
  it to ``sqrt(v_hat)`` after the bias correction, not to ``sqrt(v)`` as the paper's ``epsilon_hat`` does.
- ``adamw(..., weight_decay=1e-2)``: decoupled decay ``p *= 1 - lr wd`` first, then Adam without ``wd``.
- ``rmsprop(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False)``:
  ``s = alpha s + (1 - alpha) g^2``; centered: ``a = alpha a + (1 - alpha) g``, ``d = sqrt(s - a^2) + eps``,
  else ``d = sqrt(s) + eps``; with momentum ``b = momentum b + g / d``, ``p -= lr b``; else ``p -= lr g / d``.
- ``adagrad(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10)``:
  ``s += g^2``; ``p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)``.
- ``sgd_full`` (``nn.sgd`` with ``dampening`` and ``nesterov``): ``b = g`` on the first step, then
  ``b = momentum b + (1 - dampening) g``; nesterov: ``g + momentum b``.

Gradient clipping, an option of every optimizer, is applied to the raw gradients before weight decay
(as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_`` before ``optimizer.step()``):
``clip_norm=c`` scales every gradient by ``min(1, c / (||g||_2 + 1e-6))`` over all parameters together;
``clip_value=c`` clips each entry to ``[-c, c]``. ``lr`` is a Python float or a float scalar graph input (a
schedule, ``symdiff/nn/schedules.py``, feeds it per step without recompiling).
"""
from __future__ import annotations

import numbers
from typing import Iterable, Optional, Union

import numpy as np

from .. import api as sd
from ..autodiff import grad
from ..ir import Node
from .modules import Module
from .optim import Updates

__all__ = ["adam", "adamw", "rmsprop", "adagrad", "sgd_full", "clip_gradients", "check_params", "check_lr"]

Params = Union[Module, Iterable[Node]]


def check_params(fn: str, params: Params) -> list[Node]:
    """The sd.param leaves of a module or a list, or an error naming ``fn``."""
    ps = params.params() if isinstance(params, Module) else list(params)
    if not ps:
        raise ValueError(f"{fn}: no parameters to update")
    for p in ps:
        if not isinstance(p, Node) or p.op != "param":
            raise TypeError(f"{fn}: params must be sd.param leaves, got {p!r}")
    return ps


def check_lr(fn: str, lr) -> Union[float, Node]:
    """A non-negative float or a float scalar tensor, or an error naming ``fn``."""
    if isinstance(lr, Node):
        if lr.shape != () or not lr.dtype.startswith("float"):
            raise TypeError(f"{fn}: lr must be a float scalar tensor or a Python float, got {lr.dtype}{list(lr.shape)}")
        return lr
    if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
        raise TypeError(f"{fn}: lr must be a float or a float scalar tensor, got {type(lr).__name__}")
    if lr < 0:
        raise ValueError(f"{fn}: lr must be non-negative, got {lr!r}")
    return float(lr)


def _as(v, dtype: str):
    return sd.astype(v, dtype) if isinstance(v, Node) else v


def clip_gradients(grads: list[Node], clip_norm: Optional[float] = None,
                   clip_value: Optional[float] = None) -> list[Node]:
    """The gradients clipped by value (each entry to [-c, c]) and/or by global norm (PyTorch's order:
    ``clip_grad_value_`` then... each used alone in practice; both given: value first)."""
    if clip_value is not None:
        if clip_value <= 0:
            raise ValueError(f"clip_value must be positive, got {clip_value}")
        grads = [sd.minimum(sd.maximum(g, -float(clip_value)), float(clip_value)) for g in grads]
    if clip_norm is not None:
        if clip_norm <= 0:
            raise ValueError(f"clip_norm must be positive, got {clip_norm}")
        sq = None
        for g in grads:
            s = sd.sum(sd.square(sd.astype(g, "float64")))
            sq = s if sq is None else sd.add(sq, s)
        coef = sd.minimum(sd.divide(float(clip_norm), sd.add(sd.sqrt(sq), 1e-6)), 1.0)  # clamp(max=1)
        grads = [sd.multiply(g, sd.astype(coef, g.dtype)) for g in grads]
    return grads


class _Builder:
    """Shared bookkeeping: the buffers an optimizer reads and their initial values."""

    def __init__(self, fn: str, loss: Node, params: Params, lr, clip_norm, clip_value, prefix: str) -> None:
        self.fn = fn
        self.ps = check_params(fn, params)
        self.lr = check_lr(fn, lr)
        self.grads = clip_gradients(grad(loss, self.ps), clip_norm, clip_value)
        self.updates = Updates()
        self.updates.buffers = []
        self.init: dict[str, np.ndarray] = {}
        self.prefix = prefix
        self.step = None

    def buffer(self, p: Node, state: str, value: float = 0.0) -> Node:
        b = sd.input(f"{p.name}__{state}", p.shape, p.dtype)
        self.updates.buffers.append(b)
        self.init[b.name] = np.full(p.shape, value, p.dtype)
        return b

    def step_count(self, dtype: str) -> Node:
        """``t`` of this step (1 on the first): the buffer holds the count of steps already taken."""
        if self.step is None:
            s = sd.input(f"{self.prefix}__step", (), "float64")
            self.updates.buffers.append(s)
            self.init[s.name] = np.zeros((), np.float64)
            self.step = sd.add(s, 1.0)
            self.updates[s.name] = self.step
        return self.step

    def done(self) -> Updates:
        init = self.init
        self.updates.initial_state = lambda: {k: v.copy() for k, v in init.items()}
        return self.updates


def _check_betas(fn: str, betas) -> tuple:
    b1, b2 = (float(b) for b in betas)
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"{fn}: betas must be in [0, 1), got {tuple(betas)}")
    return b1, b2


def _adam(fn: str, loss, params, lr, betas, eps, weight_decay, amsgrad, decoupled, clip_norm, clip_value, prefix):
    b1, b2 = _check_betas(fn, betas)
    B = _Builder(fn, loss, params, lr, clip_norm, clip_value, prefix)
    t = B.step_count("float64")
    bc1 = sd.subtract(1.0, sd.power(b1, t))  # 1 - b1^t
    bc2_sqrt = sd.sqrt(sd.subtract(1.0, sd.power(b2, t)))
    for p, g in zip(B.ps, B.grads):
        dt, lr_p = p.dtype, _as(B.lr, p.dtype)
        if weight_decay and decoupled:
            p_eff = sd.multiply(p, sd.subtract(1.0, sd.multiply(lr_p, float(weight_decay))))  # p *= 1 - lr wd
        else:
            p_eff = p
            if weight_decay:
                g = sd.add(g, sd.multiply(p, float(weight_decay)))
        m, v = B.buffer(p, "exp_avg"), B.buffer(p, "exp_avg_sq")
        m_new = sd.add(sd.multiply(m, b1), sd.multiply(g, 1.0 - b1))
        v_new = sd.add(sd.multiply(v, b2), sd.multiply(sd.square(g), 1.0 - b2))
        B.updates[m.name], B.updates[v.name] = m_new, v_new
        v_used = v_new
        if amsgrad:
            vmax = B.buffer(p, "max_exp_avg_sq")
            v_used = sd.maximum(vmax, v_new)
            B.updates[vmax.name] = v_used
        denom = sd.add(sd.divide(sd.sqrt(v_used), sd.astype(bc2_sqrt, dt)), float(eps))
        step_size = sd.divide(lr_p, sd.astype(bc1, dt))
        B.updates[p.name] = sd.subtract(p_eff, sd.multiply(step_size, sd.divide(m_new, denom)))
    return B.done()


def adam(loss: Node, params: Params, lr: Union[float, Node] = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0, amsgrad: bool = False, clip_norm: Optional[float] = None,
         clip_value: Optional[float] = None, prefix: str = "adam") -> Updates:
    """One Adam step as a graph (PyTorch's ``torch.optim.Adam``; see the module docstring)."""
    return _adam("adam", loss, params, lr, betas, eps, weight_decay, amsgrad, False, clip_norm, clip_value, prefix)


def adamw(loss: Node, params: Params, lr: Union[float, Node] = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 1e-2, amsgrad: bool = False, clip_norm: Optional[float] = None,
          clip_value: Optional[float] = None, prefix: str = "adamw") -> Updates:
    """One AdamW step (decoupled weight decay, ``torch.optim.AdamW``)."""
    return _adam("adamw", loss, params, lr, betas, eps, weight_decay, amsgrad, True, clip_norm, clip_value, prefix)


def rmsprop(loss: Node, params: Params, lr: Union[float, Node] = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
            weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
            clip_norm: Optional[float] = None, clip_value: Optional[float] = None) -> Updates:
    """One RMSprop step (``torch.optim.RMSprop``)."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"rmsprop: alpha must be in [0, 1), got {alpha}")
    B = _Builder("rmsprop", loss, params, lr, clip_norm, clip_value, "rmsprop")
    for p, g in zip(B.ps, B.grads):
        lr_p = _as(B.lr, p.dtype)
        if weight_decay:
            g = sd.add(g, sd.multiply(p, float(weight_decay)))
        s = B.buffer(p, "square_avg")
        s_new = sd.add(sd.multiply(s, alpha), sd.multiply(sd.square(g), 1.0 - alpha))
        B.updates[s.name] = s_new
        if centered:
            a = B.buffer(p, "grad_avg")
            a_new = sd.add(sd.multiply(a, alpha), sd.multiply(g, 1.0 - alpha))
            B.updates[a.name] = a_new
            avg = sd.add(sd.sqrt(sd.subtract(s_new, sd.square(a_new))), float(eps))
        else:
            avg = sd.add(sd.sqrt(s_new), float(eps))
        if momentum:
            b = B.buffer(p, "momentum_buffer")
            b_new = sd.add(sd.multiply(b, float(momentum)), sd.divide(g, avg))
            B.updates[b.name] = b_new
            B.updates[p.name] = sd.subtract(p, sd.multiply(lr_p, b_new))
        else:
            B.updates[p.name] = sd.subtract(p, sd.multiply(lr_p, sd.divide(g, avg)))
    return B.done()


def adagrad(loss: Node, params: Params, lr: Union[float, Node] = 1e-2, lr_decay: float = 0.0,
            weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
            clip_norm: Optional[float] = None, clip_value: Optional[float] = None) -> Updates:
    """One Adagrad step (``torch.optim.Adagrad``)."""
    B = _Builder("adagrad", loss, params, lr, clip_norm, clip_value, "adagrad")
    t = B.step_count("float64")
    for p, g in zip(B.ps, B.grads):
        dt = p.dtype
        if weight_decay:
            g = sd.add(g, sd.multiply(p, float(weight_decay)))
        s = B.buffer(p, "sum", float(initial_accumulator_value))
        s_new = sd.add(s, sd.square(g))
        B.updates[s.name] = s_new
        clr = sd.divide(_as(B.lr, "float64"), sd.add(1.0, sd.multiply(sd.subtract(t, 1.0), float(lr_decay))))
        std = sd.add(sd.sqrt(s_new), float(eps))
        B.updates[p.name] = sd.subtract(p, sd.multiply(sd.astype(clr, dt), sd.divide(g, std)))
    return B.done()


def sgd_full(loss: Node, params: Params, lr: Union[float, Node], momentum: float = 0.0, dampening: float = 0.0,
             weight_decay: float = 0.0, nesterov: bool = False, clip_norm: Optional[float] = None,
             clip_value: Optional[float] = None) -> Updates:
    """SGD with PyTorch's every option (``torch.optim.SGD``): the momentum buffer starts as the first
    gradient, later steps damp the new gradient; ``nesterov`` looks ahead."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("sgd: nesterov momentum requires a momentum and zero dampening")
    B = _Builder("sgd", loss, params, lr, clip_norm, clip_value, "sgd")
    t = B.step_count("float64") if momentum else None
    for p, g in zip(B.ps, B.grads):
        lr_p = _as(B.lr, p.dtype)
        if weight_decay:
            g = sd.add(g, sd.multiply(p, float(weight_decay)))
        if momentum:
            b = B.buffer(p, "momentum_buffer")
            first = sd.astype(sd.equal(t, 1.0), p.dtype)  # 1 on the first step: the buffer is the gradient
            later = sd.add(sd.multiply(b, float(momentum)), sd.multiply(g, 1.0 - float(dampening)))
            b_new = sd.add(sd.multiply(first, g), sd.multiply(sd.subtract(1.0, first), later))
            B.updates[b.name] = b_new
            g = sd.add(g, sd.multiply(b_new, float(momentum))) if nesterov else b_new
        B.updates[p.name] = sd.subtract(p, sd.multiply(g, lr_p))
    return B.done()

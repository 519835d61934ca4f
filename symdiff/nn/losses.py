"""Losses and regularisers (each returns a scalar tensor; add them to build the training objective)."""
from __future__ import annotations

from typing import Iterable, Union

from .. import api as sd
from ..ir import Node, apply
from .modules import Module


def cross_entropy(logits: Node, labels: Node) -> Node:
    """Mean negative log-likelihood of int ``labels`` (N,) under ``softmax(logits)`` (N, C): ``sd.cross_entropy``."""
    return sd.cross_entropy(logits, labels)


def nll(log_probs: Node, labels: Node) -> Node:
    """Mean negative log-likelihood from log-probabilities (N, C) (e.g. a ``LogSoftmax`` output):
    ``-mean(log_probs[i, labels[i]])``."""
    if not isinstance(labels, Node):
        raise TypeError("nll: labels must be a symdiff int tensor (sd.input(..., dtype='int64'))")
    if log_probs.ndim == 1:
        log_probs = sd.reshape(log_probs, (1,) + log_probs.shape)
        labels = sd.reshape(labels, (1,)) if labels.shape == () else labels
    sd.check_labels("nll", log_probs, labels, "log-probabilities")
    return sd.negative(sd.mean(apply("pick", [log_probs, labels])))


def mse(pred: Node, target, broadcast: bool = False) -> Node:
    """Mean squared error ``mean((pred - target)**2)``; ``target`` of ``pred``'s shape (see sd.mse)."""
    return sd.mse(pred, target, broadcast=broadcast)


def _float_target(fn: str, pred: Node, target, broadcast: bool) -> Node:
    target = sd.as_tensor(target, pred)
    if not target.dtype.startswith("float"):
        raise TypeError(f"{fn}: targets must be float (0/1 or probabilities), got {target.dtype}{list(target.shape)}; "
                        f"cast them (y.astype('float32')) or, with the Trainer, use label_dtype='float32'")
    sd.check_target(fn, pred, target, broadcast)
    return target


def binary_cross_entropy_with_logits(logits: Node, targets, broadcast: bool = False) -> Node:
    """Binary cross-entropy of targets y in [0, 1] under ``sigmoid(z)``, written stably on the logits:
    ``mean(softplus(z) - y * z)`` (= -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)), never log(0)).
    ``targets`` must have the logits' shape (PyTorch raises too); ``broadcast=True`` allows broadcasting."""
    targets = _float_target("bce_with_logits", logits, targets, broadcast)
    return sd.mean(sd.subtract(sd.softplus(logits), sd.multiply(targets, logits)))


def bce(probs: Node, targets, broadcast: bool = False) -> Node:
    """Binary cross-entropy of probabilities ``p`` (after a sigmoid): ``-mean(y log p + (1 - y) log(1 - p))``,
    each log clamped to >= -100 as PyTorch's ``BCELoss`` does (p = 0 or 1 gives 100, not inf). Prefer
    :func:`bce_with_logits` on the logits (no clamp needed)."""
    targets = _float_target("bce", probs, targets, broadcast)
    lp = sd.maximum(sd.log(probs), -100.0)
    l1p = sd.maximum(sd.log(sd.subtract(1.0, probs)), -100.0)
    return sd.negative(sd.mean(sd.add(sd.multiply(targets, lp), sd.multiply(sd.subtract(1.0, targets), l1p))))


def l1_loss(pred: Node, target, broadcast: bool = False) -> Node:
    """Mean absolute error ``mean(|pred - target|)`` (PyTorch's ``L1Loss``)."""
    target = _float_target("l1_loss", pred, target, broadcast)
    return sd.mean(sd.abs(sd.subtract(pred, target)))


def huber(pred: Node, target, delta: float = 1.0, broadcast: bool = False) -> Node:
    """PyTorch's ``HuberLoss``: mean of ``0.5 e^2`` where ``|e| < delta``, else ``delta (|e| - 0.5 delta)``."""
    target = _float_target("huber", pred, target, broadcast)
    a = sd.abs(sd.subtract(pred, target))
    quad = sd.minimum(a, float(delta))  # |e| clipped: 0.5 q^2 + delta (|e| - q) is both branches at once
    return sd.mean(sd.add(sd.multiply(sd.square(quad), 0.5), sd.multiply(sd.subtract(a, quad), float(delta))))


bce_with_logits = binary_cross_entropy_with_logits


def _weights(params: Union[Module, Iterable[Node]], biases: bool) -> list[Node]:
    ps = params.params() if isinstance(params, Module) else list(params)
    for p in ps:
        if not isinstance(p, Node):
            raise TypeError(f"regulariser: expected a Module or parameter tensors, got {type(p).__name__}")
    return [p for p in ps if biases or p.ndim >= 2]


def _total(terms: list[Node], alpha: float) -> Node:
    if not terms:
        return sd.as_tensor(0.0)
    total = terms[0]
    for t in terms[1:]:
        total = sd.add(total, t)
    return sd.multiply(total, alpha) if alpha != 1 else total


def l2(params: Union[Module, Iterable[Node]], alpha: float = 1.0, biases: bool = False) -> Node:
    """Weight decay ``alpha * sum_w ||w||^2`` over the weights of a module (or a list of params).

    Biases and other vectors (rank < 2: Linear biases, batch-norm gamma/beta) are excluded unless
    ``biases=True``. Its gradient is ``2 * alpha * w``: at every SGD step each weight shrinks.
    """
    return _total([sd.sum(sd.square(p)) for p in _weights(params, biases)], alpha)


def l1(params: Union[Module, Iterable[Node]], alpha: float = 1.0, biases: bool = False) -> Node:
    """Lasso penalty ``alpha * sum_w sum |w|`` (sparsifying); biases excluded by default."""
    return _total([sd.sum(sd.abs(p)) for p in _weights(params, biases)], alpha)


__all__ = ["cross_entropy", "nll", "mse", "binary_cross_entropy_with_logits", "bce_with_logits", "bce", "l1_loss",
           "huber", "l1", "l2"]

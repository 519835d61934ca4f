"""The data-parallel training step behind ``Trainer(..., client=client)``.

Each step the client holds the state (parameters, optimizer buffers), as in a local run, and:

1. broadcasts the parameters: one copy travels with each shard's task (through the scheduler);
2. each worker runs the *shard graph* on its rows of the batch: ``[data loss, model output, *grads]``,
   the gradients those of the objective (loss plus regularizer) w.r.t. every parameter;
3. the client combines them (``sharding.combine``): loss and gradients size-weighted means
   (``sum_i (n_i / N) g_i`` is the gradient of the batch-mean loss; the regularizer's gradient does not
   depend on the batch and the weights sum to one), outputs concatenated;
4. applies the optimizer step once, locally, with the *update graph*: the Trainer's own optimizer built on
   the surrogate objective ``sum_p sum(p * G_p)`` whose gradient w.r.t. ``p`` is the input ``G_p`` (the
   combined gradient), so every optimizer (momentum, Adam, clipping, weight decay) is applied unchanged.

The state changes only after every shard of the step has returned: a step retried after a lost worker
applies its update exactly once. The shard count is fixed when the Trainer is built (one shard per
worker then), so a run that loses a worker combines the same shards in the same order as one that does
not and ends with the same parameters. Not supported: batch norm in training mode (its batch statistics
would be per shard), and dropout draws a different mask than a local run (the seed is folded with the
shard index so shards draw independent masks).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .. import api as sd
from ..autodiff import grad
from ..compiled import compile as sd_compile
from ..nn.functional import SEED_INPUT, STEP_INPUT
from .parallel import DataParallel

if TYPE_CHECKING:
    from ..nn.trainer import Trainer

GRAD_SUFFIX = "__grad"
SEED_STRIDE = 1_000_003  # shard i draws its random numbers with seed + i * SEED_STRIDE (shard 0: the run's seed)


class ParallelStep:
    """One data-parallel training step of ``trainer`` on ``client`` (see the module docstring); called as
    ``step(xb, yb, lr)`` it returns what the Trainer's local step function returns:
    ``(loss, outputs, *new values in trainer.updates order)``."""

    def __init__(self, trainer: "Trainer", client: Any, x_name: str, y_name: str, lr_name: str) -> None:
        if trainer.model.state_updates():
            raise ValueError("Trainer(client=...): the model updates running statistics (batch norm in training "
                             "mode); per-shard batch statistics would differ from the batch's, so data-parallel "
                             "training does not support it")
        self.trainer = trainer
        self.x_name, self.y_name, self.lr_name = x_name, y_name, lr_name
        self.params = trainer.model.params()
        # a symbolic batch (Trainer(batch_dim=...), the default): one shard graph serves every shard size
        graph = self.shard_graph if trainer.batch_dim is None else self.shard_graph(trainer.batch_dim)
        self.dp = DataParallel(graph, client, split=(x_name, y_name),
                               reduce=["mean", "concat"] + ["mean"] * len(self.params),
                               **trainer.compile_options)
        self.update_fn = self._update_fn()

    def shard_graph(self, rows: Union[int, str]) -> list:
        """``[data loss, outputs, *d objective / d params]`` of the Trainer's model on a shard of ``rows`` rows
        (a number, or the name of a symbolic batch dimension)."""
        t = self.trainer
        was_training = t.model.training
        t.model.train()
        try:
            x = sd.input(self.x_name, (rows,) + t.input_shape, t.dtype)
            out = t.model(x)
            y = sd.input(self.y_name, (rows,) + t.label_shape, t.label_dtype)
            data_loss = t.loss_fn(out, y)
            objective = data_loss if t.regularizer is None else sd.add(data_loss, t.regularizer(t.model))
            return [data_loss, out, *grad(objective, self.params)]
        finally:
            t.model.train(was_training)

    def _update_fn(self):
        """The optimizer step with the combined gradients as inputs ``<param>__grad``, compiled here."""
        from ..nn.trainer import build_optimizer_step
        t = self.trainer
        grads = [sd.input(p.name + GRAD_SUFFIX, p.shape, p.dtype) for p in self.params]
        # d/dp sum(p * G_p) = G_p: the optimizer differentiates this and sees the combined gradient
        surrogate = _total([sd.sum(sd.multiply(p, g)) for p, g in zip(self.params, grads)])
        lr_in = sd.input(self.lr_name, (), t.dtype)
        updates = build_optimizer_step(t, surrogate, lr_in)
        if set(updates) != set(t.updates):
            raise ValueError(f"Trainer(client=...): the optimizer's update of the combined gradients updates "
                             f"{sorted(updates)}, the local step {sorted(t.updates)}")
        self.update_names = list(t.updates)
        return sd_compile([updates[k] for k in self.update_names], **t.compile_options)

    def __call__(self, xb: np.ndarray, yb: np.ndarray, lr: float) -> tuple:
        t = self.trainer
        rest = {p.name: t.state[p.name] for p in self.params}
        rest[STEP_INPUT] = np.int64(t.global_step)
        seeds = [np.int64(t.seed + i * SEED_STRIDE) for i in range(len(self.dp.shard_sizes(len(xb))))]
        loss, out, *grads = self.dp.run({self.x_name: xb, self.y_name: yb, **rest}, per_shard={SEED_INPUT: seeds})[0]
        feed: dict[str, Any] = {p.name + GRAD_SUFFIX: g for p, g in zip(self.params, grads)}
        feed.update({self.lr_name: np.asarray(lr, t.dtype), SEED_INPUT: np.int64(t.seed),
                     STEP_INPUT: np.int64(t.global_step)})
        fn = self.update_fn
        new = fn(**{n: feed[n] if n in feed else t.state[n] for n in fn.input_names})
        new = [new] if fn.single else list(new)
        return (loss, out, *new)

    def close(self) -> None:
        """Release what the data-parallel step started (a client passed in stays open)."""
        self.dp.close()


def _total(terms: list):
    acc = terms[0]
    for t in terms[1:]:
        acc = sd.add(acc, t)
    return acc


__all__ = ["ParallelStep", "GRAD_SUFFIX", "SEED_STRIDE"]

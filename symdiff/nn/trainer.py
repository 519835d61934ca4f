"""A training loop around one compiled training step.

:class:`Trainer` builds, for a model and a loss, the training graph (forward, backward, SGD update and
batch-norm running statistics in one compiled function), calls it once per mini-batch, and keeps the
state (parameters, momentum buffers, running statistics) as NumPy arrays between calls. Each epoch it
reshuffles the training set (seeded), shows a tqdm progress bar with the loss, accuracy and throughput
(samples/s), evaluates on validation data with the evaluation-mode graph, and appends to a
:class:`History` that can be plotted.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from .. import api as sd
from ..compiled import compile as _compile
from ..ir import Node
from .functional import SEED_INPUT, STEP_INPUT
from .losses import cross_entropy
from .modules import Module
from .optim import sgd

X_INPUT, Y_INPUT, LR_INPUT = "x", "y", "lr"


@dataclass
class History:
    """Per-epoch training record (lists indexed by epoch)."""

    epoch: list = field(default_factory=list)
    loss: list = field(default_factory=list)          # mean training loss over the epoch's batches
    acc: list = field(default_factory=list)           # mean training accuracy (None without a metric)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    samples_per_sec: list = field(default_factory=list)
    seconds: list = field(default_factory=list)       # wall time of the epoch's training steps

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in self.__dataclass_fields__}

    def line(self, i: int = -1) -> str:
        """One epoch as text: ``epoch 3: loss 0.1234 acc 0.9650 val_loss ... lr 0.05 12345 samples/s``."""
        parts = [f"epoch {self.epoch[i]}: loss {self.loss[i]:.4f}"]
        m = getattr(self, "metric_name", "acc")  # the metric column: acc, or rmse for regression losses
        for k, label in (("acc", m), ("val_loss", "val_loss"), ("val_acc", f"val_{m}")):
            v = getattr(self, k)[i]
            if v is not None:
                parts.append(f"{label} {v:.4f}")
        parts.append(f"lr {self.lr[i]:.4g}")
        parts.append(f"{self.samples_per_sec[i]:.0f} samples/s")
        return " ".join(parts)

    def plot(self, path: str, title: str = "training") -> str:
        """Save loss and accuracy curves to ``path`` (PNG/SVG/PDF by extension) with matplotlib's Agg
        canvas (no display, no change to the global matplotlib backend). Returns ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(self.epoch, self.loss, label="train")
        if any(v is not None for v in self.val_loss):
            ax1.plot(self.epoch, [np.nan if v is None else v for v in self.val_loss], label="validation")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("loss")
        ax1.set_yscale("log")
        ax1.grid(True, alpha=0.3)
        ax1.legend()
        if any(v is not None for v in self.acc) or any(v is not None for v in self.val_acc):
            if any(v is not None for v in self.acc):
                ax2.plot(self.epoch, [np.nan if v is None else v for v in self.acc], label="train")
            if any(v is not None for v in self.val_acc):
                ax2.plot(self.epoch, [np.nan if v is None else v for v in self.val_acc], label="validation")
            ax2.set_ylabel("accuracy")
            ax2.legend()
        else:
            ax2.plot(self.epoch, self.lr)
            ax2.set_ylabel("learning rate")
        ax2.set_xlabel("epoch")
        ax2.grid(True, alpha=0.3)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path)
        return path


def accuracy(out: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Classification accuracy: argmax of (N, C) scores against int labels, or sign of (N,) logits
    against 0/1 targets; None when neither applies."""
    if y.dtype.kind in "iu" and out.ndim == 2 and y.shape == out.shape[:1]:
        return float(np.mean(np.argmax(out, axis=1) == y))
    if out.shape == y.shape and y.dtype.kind == "f":
        return float(np.mean((out > 0) == (y > 0.5)))
    return None


def rmse(out: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Root-mean-square error of float outputs against targets of the same shape (regression)."""
    if out.shape != y.shape or y.dtype.kind != "f":
        return None
    return float(np.sqrt(np.mean((out.astype(np.float64) - y) ** 2)))


REGRESSION_LOSSES = ("mse", "l1_loss", "huber")  # metric "auto": RMSE for these, accuracy otherwise
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
CLASS_LOSSES = ("cross_entropy", "nll")  # losses of integer class labels (the others take float targets)


def _optimizer_step(optimizer, objective: Node, params: list, lr: Node, momentum: float, weight_decay: float,
                    options: dict):
    """The Updates of one step: ``optimizer`` a name of :data:`OPTIMIZERS` (``momentum`` only for sgd and
    rmsprop) or a callable ``optimizer(objective, params, lr) -> Updates``."""
    from . import optimizers as opt
    if callable(optimizer):
        return optimizer(objective, params, lr)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Trainer: optimizer must be one of {', '.join(OPTIMIZERS)} or a callable "
                         f"(objective, params, lr) -> Updates, got {optimizer!r}")
    if optimizer == "sgd":
        return sgd(objective, params, lr, momentum=momentum, weight_decay=weight_decay, **options)
    if momentum and optimizer != "rmsprop":
        raise ValueError(f"Trainer: momentum= applies to sgd and rmsprop; {optimizer} takes betas= "
                         f"(optimizer_options)")
    kw = dict(options)
    if weight_decay:
        kw.setdefault("weight_decay", weight_decay)
    if momentum:
        kw.setdefault("momentum", momentum)
    return getattr(opt, optimizer)(objective, params, lr, **kw)


def build_optimizer_step(trainer: "Trainer", objective: Node, lr: Node):
    """The Updates of ``trainer``'s optimizer (its ``optimizer_config``) on ``objective`` for the model's params."""
    optimizer, momentum, weight_decay, options = trainer.optimizer_config
    return _optimizer_step(optimizer, objective, trainer.model.params(), lr, momentum, weight_decay, options)


class Trainer:
    """Mini-batch SGD for a :class:`~symdiff.nn.Module`, one compiled call per step.

    ``model(x)`` with ``x``: (batch, *input_shape) gives the outputs; the training objective is
    ``loss_fn(outputs, y) + regularizer(model)``. ``lr`` is a float or a schedule ``lr(epoch) -> float``
    (fed as the scalar graph input ``lr``). ``batch_dim``: the name of the batch axis (default "batch",
    a symbolic size, docs/symbolic_dims.md): one compiled training function and one compiled evaluation
    function serve every batch size, the last partial batch of an epoch included; None builds fixed shapes
    ``(batch_size, ...)`` (then each other size, a partial batch or an evaluation chunk, compiles its own
    graph). ``drop_last``: drop the last incomplete batch of each epoch (default False: every sample is
    used every epoch). ``metric``: "auto" (accuracy where it applies, see :func:`accuracy`), a callable
    ``metric(outputs, y) -> float``, or None.
    ``optimizer``: "sgd" (default), "adam", "adamw", "rmsprop", "adagrad" (``optimizer_options``: their
    keywords, as PyTorch's: ``betas``, ``eps``, ``amsgrad``, ``clip_norm``, ...), or a callable
    ``optimizer(objective, params, lr) -> Updates``; its state buffers are carried between steps.
    ``client``: a ``dask.distributed.Client``: each step runs data-parallel on its workers (the batch split
    into one shard per worker, gradients averaged, the optimizer step applied once here; see
    docs/distributed.md and ``symdiff.distributed.training``).
    """

    def __init__(self, model: Module, loss_fn: Callable[[Node, Node], Node] = cross_entropy, *, input_shape,
                 batch_size: int = 32, lr: Union[float, Callable[[int], float]] = 0.1, momentum: float = 0.0,
                 weight_decay: float = 0.0, regularizer: Optional[Callable[[Module], Node]] = None,
                 label_shape="auto", label_dtype: str = "auto", dtype: str = "float32", metric="auto", seed: int = 0,
                 progress: bool = True, compile_options: Optional[dict] = None, optimizer="sgd",
                 optimizer_options: Optional[dict] = None, client=None, batch_dim: Optional[str] = "batch",
                 drop_last: bool = False) -> None:
        if batch_dim is not None and not (isinstance(batch_dim, str) and batch_dim.isidentifier()):
            raise ValueError(f"Trainer: batch_dim must be a name (a Python identifier) or None, got {batch_dim!r}")
        self.model, self.loss_fn, self.regularizer = model, loss_fn, regularizer
        self.input_shape = tuple(int(d) for d in np.atleast_1d(input_shape))  # (features,) or (C, H, W)
        self.batch_size, self.dtype = int(batch_size), dtype
        if self.batch_size < 1:
            raise ValueError(f"Trainer: batch_size must be at least 1, got {batch_size!r}")
        self.batch_dim, self.drop_last = batch_dim, bool(drop_last)
        self.schedule = lr if callable(lr) else (lambda epoch, _lr=float(lr): _lr)
        regression = getattr(loss_fn, "__name__", "") in REGRESSION_LOSSES
        self.metric = (rmse if regression else accuracy) if metric == "auto" else metric
        self.seed, self.progress = int(seed), progress
        self.compile_options = dict(compile_options or {})
        self.global_step = 0
        self.epochs_done = 0
        self.history = History()
        self.history.metric_name = "rmse" if self.metric is rmse else "acc"

        was_training = model.training
        model.train()
        try:
            out = model(self._x_input(self._rows(self.batch_size)))
            if not isinstance(out, Node):
                raise TypeError(f"Trainer: the model must return one tensor, got {type(out).__name__}")
            # labels: class indices for the class losses (one per row of scores), else targets shaped like
            # the model's output per sample; "auto" infers both from the loss and the output
            classes = getattr(loss_fn, "__name__", "") in CLASS_LOSSES
            self.label_dtype = label_dtype if label_dtype != "auto" else ("int64" if classes else dtype)
            if label_shape == "auto":
                label_shape = out.shape[1:-1] if self.label_dtype in ("int32", "int64") else out.shape[1:]
            self.label_shape = tuple(int(d) for d in label_shape)
            self.optimizer_config = (optimizer, momentum, weight_decay, dict(optimizer_options or {}))
            rows = self._rows(self.batch_size)
            self.loss, self.output, self.objective, self.updates = self._training_graph(out, rows)
        finally:
            model.train(was_training)
        self.parallel = None  # the data-parallel step (with a client): shard graphs on the workers
        if client is not None:
            from ..distributed.training import ParallelStep
            self.parallel = ParallelStep(self, client, X_INPUT, Y_INPUT, LR_INPUT)
        # the compiled training steps by batch key: one (the batch name) with a symbolic batch, else one per size
        self._step_fns: dict = {}
        self.step_fn = None
        if client is None:
            self.step_fn = self._step_fns[self._rows(self.batch_size)] = _compile(
                [self.loss, self.output, *self.updates.values()], **self.compile_options)
            self._prepare(self.batch_size)
        self.state: dict[str, np.ndarray] = {**model.init_values(self.seed), **self.updates.initial_state()}
        self._eval_fns: dict[tuple, object] = {}

    # -- graphs -----------------------------------------------------------------------------------------------
    def _rows(self, n: int):
        """The leading size of the graph that serves a batch of ``n`` rows: the batch name, or ``n`` itself."""
        return self.batch_dim if self.batch_dim is not None else int(n)

    def _x_input(self, rows) -> Node:
        return sd.input(X_INPUT, (rows,) + self.input_shape, self.dtype)

    def _y_input(self, rows) -> Node:
        return sd.input(Y_INPUT, (rows,) + self.label_shape, self.label_dtype)

    def _training_graph(self, out: Node, rows) -> tuple:
        """(data loss, outputs, objective, Updates) of a training-mode forward pass ``out`` of ``rows`` rows:
        the optimizer's step plus the running-statistics updates that pass recorded."""
        data_loss = self.loss_fn(out, self._y_input(rows))
        objective = data_loss if self.regularizer is None else sd.add(data_loss, self.regularizer(self.model))
        updates = build_optimizer_step(self, objective, sd.input(LR_INPUT, (), self.dtype))
        updates.update(self.model.state_updates())
        return data_loss, out, objective, updates

    def _step_fn(self, n: int):
        """The compiled training step for a batch of ``n`` rows (fixed shapes: built and compiled per size)."""
        key = self._rows(n)
        if key not in self._step_fns:
            was_training = self.model.training
            self.model.train()
            try:
                loss, out, _, updates = self._training_graph(self.model(self._x_input(key)), key)
            finally:
                self.model.train(was_training)
            if list(updates) != list(self.updates):
                raise RuntimeError(f"Trainer: the training graph for {n} rows updates {list(updates)}, "
                                   f"the first one {list(self.updates)}")
            self._notice(f"compiling the training graph for batches of {n} (fixed shapes, batch_dim=None: once "
                         f"per size)")
            self._step_fns[key] = _compile([loss, out, *updates.values()], **self.compile_options)
        return self._step_fns[key]

    def _prepare(self, n: int) -> None:
        """Compile the training step for batches of ``n`` rows now, not in the first timed step, where a backend
        compiles once per set of sizes (``SpecializedFunction.for_sizes``) or the shapes are fixed."""
        if self.parallel is not None:
            return
        fn = self._step_fn(n)
        if self.batch_dim is not None and hasattr(fn, "for_sizes"):
            fn.for_sizes({self.batch_dim: int(n)})

    def _notice(self, text: str) -> None:
        if self.progress:
            from tqdm.auto import tqdm
            tqdm.write(f"Trainer: {text}", file=sys.stderr)

    @property
    def compiles(self) -> dict:
        """``{"train": n, "eval": m}``: how many graphs the local training steps and the evaluation functions
        have compiled (a function compiled once per set of sizes counts each, see ``SpecializedFunction``;
        with a symbolic batch on a backend with ``symbolic_dims`` a whole ``fit`` compiles one of each)."""
        def count(fns) -> int:
            return sum(int(getattr(f, "compiles", 1)) for f in fns)
        return {"train": count(self._step_fns.values()), "eval": count(self._eval_fns.values())}

    # -- state ----------------------------------------------------------------------------------------------
    def param_values(self) -> dict[str, np.ndarray]:
        """Current values of the trainable parameters."""
        return {p.name: self.state[p.name] for p in self.model.params()}

    def _feed(self, fn, extra: dict) -> dict:
        feed = {}
        for name in fn.input_names:
            if name in extra:
                feed[name] = extra[name]
            elif name in self.state:
                feed[name] = self.state[name]
            else:
                raise KeyError(f"Trainer: no value for graph input {name!r}")
        return feed

    # -- one step ---------------------------------------------------------------------------------------------
    def step(self, xb: np.ndarray, yb: np.ndarray, lr: Optional[float] = None):
        """One compiled training step on a batch; updates the state. Returns (loss, outputs)."""
        lr = self.schedule(self.epochs_done) if lr is None else lr
        extra = {X_INPUT: xb, Y_INPUT: yb, LR_INPUT: np.asarray(lr, self.dtype),
                 SEED_INPUT: np.int64(self.seed), STEP_INPUT: np.int64(self.global_step)}
        if self.parallel is not None:
            res = self.parallel(xb, yb, lr)
        else:
            fn = self._step_fn(len(xb))
            res = fn(**self._feed(fn, extra))
        loss, out = res[0], res[1]
        for name, value in zip(self.updates.keys(), res[2:]):
            self.state[name] = value
        self.global_step += 1
        return float(loss), out

    # -- loops ---------------------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 10, val_data: Optional[tuple] = None,
            shuffle: bool = True, log: bool = False, patience: Optional[int] = None, monitor: str = "val_loss",
            min_delta: float = 0.0) -> History:
        """Train for ``epochs`` passes over (X, y) in batches of ``batch_size`` (the last one smaller unless
        ``drop_last``); returns (and extends) ``self.history``. With ``patience``,
        stop when ``monitor`` ("val_loss" or "val_acc") has not improved for that many epochs and keep
        the best epoch's state (``self.stopped_epoch``)."""
        from tqdm.auto import tqdm

        X = np.ascontiguousarray(X, dtype=self.dtype)
        y = self._labels(y, "fit")
        n, bs = len(X), self.batch_size
        if n != len(y):
            raise ValueError(f"fit: {n} samples but {len(y)} labels")
        steps = n // bs if self.drop_last else -(-n // bs)  # the last partial batch kept unless drop_last
        if steps == 0:
            raise ValueError(f"fit: {n} samples are fewer than one batch of {bs}"
                             + (" (drop_last=True drops it)" if n else ""))
        if patience is not None and val_data is None:
            raise ValueError("fit: early stopping (patience=) needs val_data")
        self._check_shards(n)
        if n % bs and not self.drop_last:
            self._prepare(n % bs)  # the last partial batch's compile, if any, before the epochs' timers start
        best, best_state, waited = None, None, 0
        bar = tqdm(total=epochs * steps, disable=not self.progress, unit="step", mininterval=0.25, leave=False)
        try:
            for _ in range(epochs):
                epoch = self.epochs_done
                lr = float(self.schedule(epoch))
                rng = np.random.default_rng([self.seed, epoch])  # per epoch: a resumed run shuffles the same
                order = rng.permutation(n) if shuffle else np.arange(n)
                losses, metrics, sizes = [], [], []  # per batch; epoch means weight each batch by its size
                t0 = time.perf_counter()
                for k in range(steps):
                    idx = order[k * bs:(k + 1) * bs]
                    yb = y[idx]
                    loss, out = self.step(X[idx], yb, lr)
                    losses.append(loss)
                    sizes.append(len(idx))
                    if self.metric is not None:
                        metrics.append(self.metric(out, yb))
                    bar.update(1)
                    if k % 8 == 0 or k == steps - 1:
                        dt = time.perf_counter() - t0
                        post = {"epoch": epoch, "loss": f"{np.average(losses, weights=sizes):.4f}"}
                        if metrics and None not in metrics:
                            post["acc"] = f"{np.average(metrics, weights=sizes):.3f}"
                        post["samples/s"] = f"{sum(sizes) / max(dt, 1e-9):.0f}"
                        bar.set_postfix(post, refresh=False)
                seconds = time.perf_counter() - t0
                self.epochs_done += 1
                h = self.history
                h.epoch.append(epoch)
                h.loss.append(float(np.average(losses, weights=sizes)))
                h.acc.append(float(np.average(metrics, weights=sizes)) if metrics and None not in metrics else None)
                h.lr.append(lr)
                h.seconds.append(seconds)
                h.samples_per_sec.append(sum(sizes) / max(seconds, 1e-9))
                if val_data is not None:
                    ev = self.evaluate(*val_data)
                    h.val_loss.append(ev["loss"])
                    h.val_acc.append(ev.get("acc"))
                else:
                    h.val_loss.append(None)
                    h.val_acc.append(None)
                if log:
                    bar.write(h.line())
                if patience is not None:  # early stopping on a validation metric; the best state is kept
                    value = h.val_loss[-1] if monitor == "val_loss" else h.val_acc[-1]
                    better = best is None or (value < best - min_delta if monitor == "val_loss"
                                              else value > best + min_delta)
                    if better:
                        best, best_state, waited = value, {k: v.copy() for k, v in self.state.items()}, 0
                    else:
                        waited += 1
                        if waited >= patience:
                            self.state.update(best_state)
                            self.stopped_epoch = epoch
                            break
        finally:
            bar.close()
        return self.history

    def _labels(self, y, where: str) -> np.ndarray:
        """``y`` as the graph's labels: dtype cast, a (n,) array reshaped to (n, 1) when the label shape is (1,)
        (and the reverse); any other shape is an error naming ``label_shape=``."""
        y = np.asarray(y)
        if y.dtype.kind == "f" and self.label_dtype in ("int32", "int64"):
            raise TypeError(f"{where}: float labels for a loss of class indices; pass integer labels, or a float-target "
                            f"loss (nn.bce_with_logits, nn.mse) with label_dtype={self.dtype!r}")
        want = self.label_shape
        if y.shape[1:] != want:
            if y.ndim >= 1 and int(np.prod(y.shape[1:], dtype=np.int64)) == int(np.prod(want, dtype=np.int64)):
                y = y.reshape((len(y),) + want)
            else:
                raise ValueError(f"{where}: labels of shape {y.shape} do not match label_shape={want} per sample "
                                 f"(Trainer(label_shape=...) sets it; it defaults to what the loss needs)")
        return np.ascontiguousarray(y, dtype=self.label_dtype)

    # -- checkpoints ------------------------------------------------------------------------------------------
    def save(self, path) -> str:
        """Parameters, optimizer state, buffers, epoch, step and history in one ``.npz``; :meth:`load` in a
        Trainer built the same way resumes to bit-identical results (shuffling and dropout are keyed by
        epoch and step)."""
        import json
        h = self.history
        meta = {"epochs_done": self.epochs_done, "global_step": self.global_step, "seed": self.seed,
                "history": {k: getattr(h, k) for k in h.as_dict()}}
        np.savez(path, __meta__=np.array(json.dumps(meta)), **{f"state/{k}": v for k, v in self.state.items()})
        return str(path)

    def load(self, path) -> "Trainer":
        """Restore a checkpoint written by :meth:`save` (the graph inputs must match this Trainer's)."""
        import json
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["__meta__"]))
            state = {k[len("state/"):]: f[k] for k in f.files if k.startswith("state/")}
        missing = set(self.state) - set(state)
        if missing:
            raise ValueError(f"Trainer.load: {path} lacks {', '.join(sorted(missing))}: it was saved by a Trainer "
                             f"with another model or optimizer")
        self.state.update({k: v.copy() for k, v in state.items()})
        self.epochs_done, self.global_step = int(meta["epochs_done"]), int(meta["global_step"])
        for k, v in meta["history"].items():
            setattr(self.history, k, list(v))
        return self

    # -- evaluation ------------------------------------------------------------------------------------------
    def _eval_fn(self, n: int, with_labels: bool):
        """The compiled evaluation-mode graph for ``n`` rows: one for every size with a symbolic batch."""
        key = (self._rows(n), with_labels)
        if key not in self._eval_fns:
            was_training = self.model.training
            self.model.eval()
            try:
                out = self.model(self._x_input(key[0]))
                outs = [self.loss_fn(out, self._y_input(key[0])), out] if with_labels else out
                if self.batch_dim is None:  # fixed shapes: one compile per evaluation size, say so
                    labels = "with" if with_labels else "without"
                    self._notice(f"compiling the evaluation graph for {n} samples ({labels} labels; fixed shapes, "
                                 f"batch_dim=None: once per size)")
                self._eval_fns[key] = _compile(outs, **self.compile_options)
            finally:
                self.model.train(was_training)
        return self._eval_fns[key]

    def _chunks(self, n: int, chunk: Optional[int]):
        """``[(start, stop), ...]``: ``n`` rows in chunks of ``chunk`` (default the batch size), the last smaller."""
        chunk = self.batch_size if chunk is None else int(chunk)
        return [(i, min(i + chunk, n)) for i in range(0, n, chunk)]

    def predict(self, X: np.ndarray, chunk: Optional[int] = None) -> np.ndarray:
        """Model outputs in evaluation mode (dropout off, running batch-norm statistics), computed in chunks of
        ``chunk`` rows (default ``batch_size``)."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        outs = []
        for a, b in self._chunks(len(X), chunk):
            fn = self._eval_fn(b - a, False)
            outs.append(fn(**self._feed(fn, {X_INPUT: X[a:b]})))
        return np.concatenate(outs)

    def evaluate(self, X: np.ndarray, y: np.ndarray, chunk: Optional[int] = None) -> dict:
        """``{"loss": mean loss, "acc": metric}`` in evaluation mode, over chunks of ``chunk`` rows (default
        ``batch_size``): the loss is the size-weighted mean of the chunks' losses, the metric that of all outputs."""
        X = np.ascontiguousarray(X, dtype=self.dtype)
        y = self._labels(y, "evaluate")
        if len(X) == 0 or len(X) != len(y):
            raise ValueError(f"evaluate: {len(X)} samples and {len(y)} labels (need the same number, at least one)")
        total, outs = 0.0, []
        for a, b in self._chunks(len(X), chunk):
            fn = self._eval_fn(b - a, True)
            loss, out = fn(**self._feed(fn, {X_INPUT: X[a:b], Y_INPUT: y[a:b]}))
            total += float(loss) * (b - a)
            outs.append(out)
        res = {"loss": total / len(X)}
        if self.metric is not None:
            m = self.metric(np.concatenate(outs), y)
            if m is not None:
                res["acc"] = m
        return res

    def _check_shards(self, n: int) -> None:
        """With a client, every batch (the last partial one too) needs at least one row per shard."""
        if self.parallel is None or self.drop_last or n % self.batch_size == 0:
            return
        last, shards = n % self.batch_size, self.parallel.dp.shards
        if last < shards:
            raise ValueError(f"fit: the last batch has {last} rows ({n} samples, batch_size={self.batch_size}), "
                             f"fewer than the {shards} shards of the client's workers; pass drop_last=True or "
                             f"another batch_size")


__all__ = ["Trainer", "History", "accuracy", "rmse", "OPTIMIZERS"]

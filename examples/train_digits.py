"""Train an MLP on scikit-learn's bundled 8x8 digits with one compiled kernel per training step.

64 -> 128 -> ReLU -> 10, inputs standardised, Kaiming initialisation, cross-entropy + L2 weight decay,
SGD with momentum and an exponentially decaying learning rate. Forward pass, backward pass and the
parameter update are one compiled function; the Trainer calls it once per mini-batch and feeds the
learning rate of the epoch as a graph input. Prints the test accuracy as its last line and saves a
loss/accuracy plot.

    python examples/train_digits.py [--epochs 40] [--out DIR] [--dropout 0.1] [--batchnorm]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import symdiff.nn as nn


def load(seed: int):
    X, y = load_digits(return_X_y=True)  # 1797 images, ships with scikit-learn (no download)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    mean, std = Xtr.mean(0), Xtr.std(0)
    std[std == 0] = 1.0  # constant border pixels
    return ((Xtr - mean) / std).astype(np.float32), ytr, ((Xte - mean) / std).astype(np.float32), yte


def build_model(hidden: int, dropout: float, batchnorm: bool) -> nn.Sequential:
    layers = [nn.Linear(64, hidden, init="kaiming", name="fc1")]
    if batchnorm:
        layers.append(nn.BatchNorm1d(hidden, name="bn1"))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout, name="drop1"))
    layers.append(nn.Linear(hidden, 10, init="kaiming", name="fc2"))
    return nn.Sequential(*layers, name="mlp")


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.02, help="initial learning rate")
    ap.add_argument("--decay", type=float, default=0.95, help="learning rate multiplier per epoch")
    ap.add_argument("--momentum", type=float, default=0.9, help="sgd (and rmsprop) momentum")
    ap.add_argument("--optimizer", choices=("sgd", "adam", "adamw", "rmsprop"), default="sgd",
                    help="the update compiled into the step (adam-family: --lr 1e-3 is typical)")
    ap.add_argument("--l2", type=float, default=1e-4, help="L2 penalty alpha * sum ||W||^2 (biases excluded)")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--batchnorm", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "symdiff_examples"),
                    help="directory for the plot (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)

    Xtr, ytr, Xte, yte = load(args.seed)
    print(f"digits: {len(Xtr)} train / {len(Xte)} test samples, 64 features, 10 classes")
    model = build_model(args.hidden, args.dropout, args.batchnorm)
    print(model)
    n_params = sum(p.size for p in model.params())
    print(f"{n_params} parameters: {', '.join(f'{p.name}{list(p.shape)}' for p in model.params())}")

    t0 = time.perf_counter()
    trainer = nn.Trainer(model, nn.cross_entropy, input_shape=(64,), batch_size=args.batch_size,
                         lr=nn.exponential_decay(args.lr, args.decay), optimizer=args.optimizer,
                         momentum=args.momentum if args.optimizer == "sgd" else 0.0,
                         regularizer=lambda m: nn.l2(m, args.l2), seed=args.seed, progress=not args.no_progress)
    fn = trainer.step_fn
    print(f"built and compiled the training step (forward + backward + {args.optimizer} update) in {time.perf_counter() - t0:.2f} s: "
          f"backend {fn.backend}, {len(fn.input_names)} inputs -> {len(fn.outputs)} outputs")

    t0 = time.perf_counter()
    hist = trainer.fit(Xtr, ytr, epochs=args.epochs, val_data=(Xte, yte))
    train_s = time.perf_counter() - t0
    for i in sorted({0, len(hist) // 4, len(hist) // 2, 3 * len(hist) // 4, len(hist) - 1}):
        print(hist.line(i))
    steps = trainer.global_step
    print(f"trained {args.epochs} epochs ({steps} steps) in {train_s:.2f} s: "
          f"{np.mean(hist.samples_per_sec):.0f} samples/s, {1e3 * sum(hist.seconds) / steps:.3f} ms per step")

    os.makedirs(args.out, exist_ok=True)
    png = hist.plot(os.path.join(args.out, "train_digits.png"), title="MLP on sklearn digits (symdiff)")
    print(f"loss/accuracy plot: {png}")
    acc = trainer.evaluate(Xte, yte)["acc"]
    print(f"test accuracy: {acc:.3f}")
    return acc


if __name__ == "__main__":
    main()

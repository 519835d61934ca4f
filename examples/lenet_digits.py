"""A LeNet-style convolutional network on scikit-learn's 8x8 digits, trained to >= 98% test accuracy.

The digits (pixel values 0..16, scaled to [0, 1]) are upsampled bilinearly to 1x16x16; the training
set is augmented with the eight one-pixel shifts of every image (in 8x8 units). The network is
LeCun et al.'s LeNet-5 shape at a smaller size::

    conv 5x5, 6 (padding 2) -> BatchNorm2d -> ReLU -> max-pool 2  # 6 x 8 x 8
    conv 5x5, 16            -> BatchNorm2d -> ReLU -> max-pool 2  # 16 x 2 x 2
    flatten -> 120 -> ReLU -> 84 -> ReLU -> 10

trained with cross-entropy + L2 by SGD with momentum; ``nn.Trainer`` compiles forward pass, backward pass,
parameter update and running batch statistics into one function (backend llvm by default) and shows a
progress bar. Saves the learned first-layer filters and the training curves as PNG, and the trained
state (parameters and running statistics) as ``lenet_digits.npz`` (``examples/adversarial.py --weights``
reuses it). Prints the test accuracy as its last line.

    python examples/lenet_digits.py [--epochs 8] [--shifts 8] [--out DIR] [--backend llvm]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import symdiff.nn as nn

SHIFTS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
SIZE = 16  # the upsampled image side


def upsample(X8: np.ndarray) -> np.ndarray:
    """(n, 1, 8, 8) in [0, 1] -> (n, 1, 16, 16) float32, bilinear (scipy.ndimage.zoom, order 1)."""
    return np.clip(zoom(X8, (1, 1, SIZE / 8, SIZE / 8), order=1), 0, 1).astype(np.float32)


def shifted(X8: np.ndarray, k: int) -> np.ndarray:
    """``X8`` followed by its first ``k`` one-pixel shifts (zeros shifted in), ``(k + 1) * n`` images."""
    pad = np.pad(X8, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return np.concatenate([X8] + [np.roll(pad, s, (2, 3))[:, :, 1:-1, 1:-1] for s in SHIFTS[:k]])


def load(seed: int = 0, shifts: int = 8):
    """(Xtr, ytr, Xte, yte): 80/20 stratified split of the 1797 digits, (n, 1, 16, 16) in [0, 1];
    the training set augmented with ``shifts`` shifted copies."""
    X, y = load_digits(return_X_y=True)  # ships with scikit-learn (no download)
    X8 = (X / 16.0).reshape(-1, 1, 8, 8)
    Xtr, Xte, ytr, yte = train_test_split(X8, y, test_size=0.2, random_state=seed, stratify=y)
    return upsample(shifted(Xtr, shifts)), np.tile(ytr, shifts + 1), upsample(Xte), yte


def build_model(c1: int = 6, c2: int = 16, batchnorm: bool = True, dropout: float = 0.0) -> nn.Sequential:
    def block(cin, cout, pad, k):
        layers = [nn.Conv2d(cin, cout, 5, padding=pad, name=f"conv{k}")]
        layers += [nn.BatchNorm2d(cout, name=f"bn{k}")] if batchnorm else []
        return layers + [nn.ReLU(), nn.MaxPool2d(2)]
    side = ((SIZE // 2) - 4) // 2  # 16 -> conv(pad 2) 16 -> pool 8 -> conv 4 -> pool 2
    return nn.Sequential(*block(1, c1, 2, 1), *block(c1, c2, 0, 2), nn.Flatten(),
                         nn.Linear(c2 * side * side, 120, name="fc1"), nn.ReLU(),
                         *([nn.Dropout(dropout, name="drop1")] if dropout else []),
                         nn.Linear(120, 84, name="fc2"), nn.ReLU(), nn.Linear(84, 10, name="fc3"), name="lenet")


def make_trainer(model: nn.Module, args) -> nn.Trainer:
    return nn.Trainer(model, nn.cross_entropy, input_shape=(1, SIZE, SIZE), batch_size=args.batch_size,
                      lr=nn.exponential_decay(args.lr, args.decay), momentum=args.momentum,
                      regularizer=lambda m: nn.l2(m, args.l2), seed=args.seed, progress=not args.no_progress,
                      compile_options={"backend": args.backend})


def save_filters(w: np.ndarray, path: str, title: str = "learned conv1 filters") -> str:
    """The first-layer kernels (O, 1, kH, kW) as a row of grey images (each scaled to its own range)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = w.shape[0]
    fig = Figure(figsize=(1.4 * n, 1.8), dpi=100)
    FigureCanvasAgg(fig)
    for i, ax in enumerate(fig.subplots(1, n, squeeze=False)[0]):
        ax.imshow(w[i, 0], cmap="gray", interpolation="nearest")
        ax.set_title(f"{i}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.savefig(path)
    return path


def parser(doc: str = __doc__) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--shifts", type=int, default=8, help="shifted copies of each training image (0..8)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05, help="initial learning rate")
    ap.add_argument("--decay", type=float, default=0.7, help="learning rate multiplier per epoch")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--l2", type=float, default=1e-4, help="L2 penalty alpha * sum ||W||^2 (biases excluded)")
    ap.add_argument("--no-batchnorm", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.0, help="dropout after fc1")
    ap.add_argument("--seed", type=int, default=0, help="train/test split, initialisation and shuffling")
    ap.add_argument("--backend", default="llvm")
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "symdiff_examples"),
                    help="directory for the plots and the trained state (default: %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return ap


def train(args):
    """Load the data, build and train the net; returns (model, trainer, (Xte, yte))."""
    Xtr, ytr, Xte, yte = load(args.seed, args.shifts)
    print(f"digits: {len(Xtr)} training images ({args.shifts} shifted copies each), {len(Xte)} test images, "
          f"1x{SIZE}x{SIZE}, 10 classes")
    model = build_model(batchnorm=not args.no_batchnorm, dropout=args.dropout)
    print(model)
    print(f"{sum(p.size for p in model.params())} parameters: "
          f"{', '.join(f'{p.name}{list(p.shape)}' for p in model.params())}")
    t0 = time.perf_counter()
    trainer = make_trainer(model, args)
    print(f"built and compiled the training step (forward + backward + SGD update + running statistics) in "
          f"{time.perf_counter() - t0:.2f} s: backend {trainer.step_fn.backend}")
    t0 = time.perf_counter()
    hist = trainer.fit(Xtr, ytr, epochs=args.epochs, val_data=(Xte, yte))
    train_s = time.perf_counter() - t0
    for i in range(len(hist)):
        print(hist.line(i))
    print(f"trained {args.epochs} epochs ({trainer.global_step} steps) in {train_s:.2f} s: "
          f"{np.mean(hist.samples_per_sec):.0f} samples/s, {1e3 * sum(hist.seconds) / trainer.global_step:.3f} ms "
          f"per step")
    return model, trainer, (Xte, yte)


def main(argv=None) -> float:
    args = parser().parse_args(argv)
    model, trainer, (Xte, yte) = train(args)
    os.makedirs(args.out, exist_ok=True)
    png = trainer.history.plot(os.path.join(args.out, "lenet_digits.png"), title="LeNet on sklearn digits (symdiff)")
    print(f"loss/accuracy plot: {png}")
    filt = save_filters(trainer.state["conv1_W"], os.path.join(args.out, "lenet_filters.png"))
    print(f"first-layer filters: {filt}")
    npz = os.path.join(args.out, "lenet_digits.npz")
    names = [p.name for p in model.params()] + [b.name for b in model.buffers()]
    np.savez(npz, split_seed=np.int64(args.seed), batchnorm=np.bool_(not args.no_batchnorm),
             **{k: trainer.state[k] for k in names})
    print(f"trained state: {npz}")
    acc = trainer.evaluate(Xte, yte)["acc"]
    print(f"test accuracy: {acc:.3f}")
    return acc


if __name__ == "__main__":
    main()

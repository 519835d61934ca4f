"""Adversarial examples with the fast gradient sign method (Goodfellow, Shlens and Szegedy, "Explaining and
harnessing adversarial examples", 2015) against the LeNet of ``examples/lenet_digits.py``.

FGSM moves every pixel by ``eps`` in the direction that increases the loss most to first order::

    x_adv = clip(x + eps * sign(d loss(f(x), y) / d x), 0, 1)

The gradient with respect to the *input image* is ``sd.grad(loss, x)`` of the evaluation-mode network
(batch norm with its running statistics), and the attack and the classification of the attacked images
are one compiled function of ``(x, y, eps)``. As a control, the same-size random perturbation
``clip(x + eps * s)`` with random signs ``s`` barely changes the accuracy: the damage comes from the
direction, not the size. Prints a table of eps against test accuracy, plots it, and saves a grid of
clean / adversarial pairs as PNG.

    python examples/adversarial.py [--weights OUT/lenet_digits.npz] [--eps 0,0.05,...] [--out DIR]

Without ``--weights`` the net is trained first (the lenet_digits.py options apply).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # lenet_digits.py lies next to this file
import lenet_digits  # noqa: E402

import symdiff as sd  # noqa: E402
import symdiff.nn as nn  # noqa: E402

DEFAULT_EPS = "0,0.02,0.05,0.1,0.15,0.2,0.3"


def fgsm_function(model: nn.Module, n: int, backend: str):
    """Compiled ``(x, y, eps, params...) -> (x_adv, logits(x_adv))`` for a batch of ``n`` images."""
    model.eval()
    x = sd.input("x", (n, 1, lenet_digits.SIZE, lenet_digits.SIZE), "float32")
    y = sd.input("y", (n,), "int64")
    eps = sd.input("eps", (), "float32")
    loss = nn.cross_entropy(model(x), y)  # the mean over the batch: the same signs as each sample's loss
    x_adv = sd.clip(x + eps * sd.sign(sd.grad(loss, x)), 0.0, 1.0)
    return sd.compile([x_adv, model(x_adv)], backend)


def load_trained(path: str):
    """(model, state, split seed) from a ``lenet_digits.npz``: the test images must be those of its split."""
    with np.load(path) as f:
        state = {k: f[k] for k in f.files}
    if "split_seed" not in state:
        raise SystemExit(f"{path}: not a lenet_digits.py state (no split_seed)")
    model = lenet_digits.build_model(batchnorm=bool(state["batchnorm"]))
    missing = {p.name for p in model.params()} - set(state)
    if missing:
        raise SystemExit(f"{path}: not a lenet_digits.py state (missing {sorted(missing)})")
    return model, state, int(state["split_seed"])


def save_pairs(clean, adv, labels, pred_clean, pred_adv, eps: float, path: str, k: int = 8) -> str:
    """Row 1: clean test images with their predictions; row 2: the FGSM images at ``eps``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.5 * k, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, k, squeeze=False)
    for j in range(k):
        for row, (img, pred) in enumerate(((clean, pred_clean), (adv, pred_adv))):
            ax = axes[row][j]
            ax.imshow(img[j, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{'clean' if row == 0 else 'adv'}: {pred[j]}", fontsize=9,
                         color="black" if pred[j] == labels[j] else "red")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"FGSM, eps = {eps} (label above: the prediction; red: wrong)")
    fig.savefig(path)
    return path


def save_curve(eps, acc, acc_rand, path: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(eps, acc, "o-", label="FGSM")
    ax.plot(eps, acc_rand, "s--", label="random signs, same eps")
    ax.set_xlabel("eps (L-infinity size of the perturbation, pixels in [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.suptitle("LeNet on digits under the fast gradient sign method")
    fig.tight_layout()
    fig.savefig(path)
    return path


def main(argv=None) -> dict:
    ap = lenet_digits.parser(__doc__)
    ap.add_argument("--weights", help="a lenet_digits.npz written by examples/lenet_digits.py (else: train)")
    ap.add_argument("--eps", default=DEFAULT_EPS, help="comma-separated epsilons (default: %(default)s)")
    ap.add_argument("--show-eps", type=float, default=0.1, help="eps of the saved clean/adversarial pairs (the "
                    "nearest listed one)")
    args = ap.parse_args(argv)
    eps_list = [float(e) for e in args.eps.split(",")]

    if args.weights:
        model, state, split = load_trained(args.weights)
        _, _, Xte, yte = lenet_digits.load(split, shifts=0)
        print(f"loaded the trained LeNet from {args.weights} (train/test split seed {split})")
    else:
        model, trainer, (Xte, yte) = lenet_digits.train(args)
        state = trainer.state

    t0 = time.perf_counter()
    fn = fgsm_function(model, len(Xte), args.backend)
    print(f"compiled the attack (loss, d loss / d x, sign step, clip, classification) for {len(Xte)} images "
          f"in {time.perf_counter() - t0:.2f} s: backend {fn.backend}")
    params = {k: state[k] for k in fn.input_names if k in state}
    rng = np.random.default_rng(args.seed)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=Xte.shape)
    shown = int(np.argmin([abs(e - args.show_eps) for e in eps_list]))  # the listed eps nearest --show-eps
    clean_pred = fn(x=Xte, y=yte, eps=np.float32(0), **params)[1].argmax(1)
    rows, acc, acc_rand = [], [], []
    for i, eps in enumerate(eps_list):
        x_adv, logits = fn(x=Xte, y=yte, eps=np.float32(eps), **params)
        # the control: random signs of the same size, classified by the same function at eps = 0
        _, logits_r = fn(x=np.clip(Xte + eps * signs, 0, 1).astype(np.float32), y=yte, eps=np.float32(0), **params)
        pred = logits.argmax(1)
        acc.append(float(np.mean(pred == yte)))
        acc_rand.append(float(np.mean(logits_r.argmax(1) == yte)))
        linf = float(np.max(np.abs(x_adv - Xte)))
        rows.append((eps, acc[-1], acc_rand[-1], linf))
        if i == shown:
            os.makedirs(args.out, exist_ok=True)
            grid = save_pairs(Xte, x_adv, yte, clean_pred, pred, eps, os.path.join(args.out, "adversarial_pairs.png"))
            print(f"clean/adversarial pairs (eps {eps}): {grid}")
    print(f"{'eps':>6}  {'FGSM accuracy':>13}  {'random-sign accuracy':>20}  {'max |x_adv - x|':>15}")
    for eps, a, ar, linf in rows:
        print(f"{eps:6.3f}  {a:13.3f}  {ar:20.3f}  {linf:15.3f}")
    os.makedirs(args.out, exist_ok=True)
    print(f"accuracy against eps: {save_curve(eps_list, acc, acc_rand, os.path.join(args.out, 'adversarial.png'))}")
    return {"eps": eps_list, "acc": acc, "acc_random": acc_rand}


if __name__ == "__main__":
    main()

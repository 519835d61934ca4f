"""The lecture's two-layer network, written with the raw DSL, and its forward and backward graphs.

    z1 --W1--> s2 --ReLU--> z2 --W2--> s3 --> cost C = cross_entropy(s3, y)

(row-vector convention: s2 = z1 @ W1). ``sd.grad`` turns the forward graph into the gradient graph
the lecture draws by hand; this script prints both as text, checks the symbolic gradients against the
lecture's backprop formulas

    dC/ds3 = (softmax(s3) - onehot(y)) / N        dC/dW2 = z2^T dC/ds3      dC/dz2 = dC/ds3 W2^T
    dC/ds2 = dC/dz2 * H(s2)                       dC/dW1 = z1^T dC/ds2

and against finite differences, and writes the graph as Graphviz DOT (and SVG when ``dot`` is installed).

    python examples/lecture_two_layer.py [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile

import numpy as np

import symdiff as sd


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "symdiff_examples"))
    ap.add_argument("--n", type=int, default=4, help="batch size")
    ap.add_argument("--d", type=int, nargs=3, default=[5, 3, 2], metavar=("D0", "D1", "D2"), help="layer sizes")
    args = ap.parse_args(argv)
    n, (d0, d1, d2) = args.n, args.d

    # -- the network, symbol by symbol as on the slide ------------------------------------------------------
    z1 = sd.input("z1", (n, d0), "float64")        # the input state
    y = sd.input("y", (n,), "int64")               # desired classes
    W1 = sd.param("W1", (d0, d1), "float64")
    W2 = sd.param("W2", (d1, d2), "float64")
    s2 = z1 @ W1                                   # weighted sums
    z2 = sd.relu(s2)                               # nonlinearity, component by component
    s3 = z2 @ W2
    C = sd.cross_entropy(s3, y)                    # the cost

    dW1, dW2 = sd.grad(C, [W1, W2])

    print("== forward graph: C(z1, y; W1, W2) ==")
    print(sd.format_graph(C))
    print()
    print("== backward graph: [C, dC/dW1, dC/dW2] (forward nodes are shared, not recomputed) ==")
    print(sd.format_graph([C, dW1, dW2]))
    print()

    # -- numbers ------------------------------------------------------------------------------------------------
    rng = np.random.default_rng(0)
    vals = {"z1": rng.standard_normal((n, d0)), "y": rng.integers(0, d2, n),
            "W1": rng.standard_normal((d0, d1)) * np.sqrt(2 / d0), "W2": rng.standard_normal((d1, d2)) * np.sqrt(2 / d1)}
    f = sd.compile([C, dW1, dW2])
    c, g1, g2 = f(**vals)
    # the lecture's backprop by hand
    S2 = vals["z1"] @ vals["W1"]
    Z2 = np.maximum(S2, 0)
    S3 = Z2 @ vals["W2"]
    P = np.exp(S3 - S3.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    dS3 = (P - np.eye(d2)[vals["y"]]) / n
    dW2_hand = Z2.T @ dS3
    dZ2 = dS3 @ vals["W2"].T
    dS2 = dZ2 * (S2 > 0)
    dW1_hand = vals["z1"].T @ dS2
    print(f"C = {float(c):.6f}")
    print(f"max |dC/dW1 - lecture formula| = {np.abs(g1 - dW1_hand).max():.2e}")
    print(f"max |dC/dW2 - lecture formula| = {np.abs(g2 - dW2_hand).max():.2e}")
    report = sd.check_grad(C, [W1, W2], vals)
    print("finite differences:")
    print(report)

    # -- pictures -----------------------------------------------------------------------------------------------
    os.makedirs(args.out, exist_ok=True)
    for stem, outs, title in (("lecture_forward", C, "forward: z1 -> W1 -> s2 -> ReLU -> z2 -> W2 -> s3 -> C"),
                              ("lecture_backward", [C, dW1, dW2], "forward + backward (red: gradient nodes)")):
        dot_path = os.path.join(args.out, stem + ".dot")
        with open(dot_path, "w") as fh:
            fh.write(sd.to_dot(outs, title=title))
        print(f"wrote {dot_path}")
        if shutil.which("dot"):
            svg = os.path.join(args.out, stem + ".svg")
            subprocess.run(["dot", "-Tsvg", dot_path, "-o", svg], check=True)
            print(f"wrote {svg}")
    if not shutil.which("dot"):
        print("Graphviz `dot` is not installed: SVG not rendered (install graphviz, then run "
              f"`dot -Tsvg {os.path.join(args.out, 'lecture_backward.dot')} -o lecture_backward.svg`)")
    if not report.passed:
        raise SystemExit("gradient check failed")


if __name__ == "__main__":
    main()

"""Op-suite cases for the convolution ops (symdiff/ops_conv.py) and the sd.conv* functions (merged into
tests/test_ops.py CASES / API_CASES). References: tests/conv_reference.py's direct loops."""
from __future__ import annotations

import numpy as np

import conv_reference as R
import symdiff as sd
from symdiff.ir import apply

from test_ops import Case


def _xw(sx, sw):
    return lambda r: {"x": r.standard_normal(sx), "w": r.standard_normal(sw)}


# strided + dilated + grouped + asymmetric padding in one case per op (tiny: the backend suite compiles them all)
_P = dict(stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2)
_X, _W, _G = (1, 2, 4, 4), (2, 1, 2, 2), (1, 2, 2, 3)  # conv of _X by _W has shape _G


def _p(p):
    return p["stride"], p["padding"], p["dilation"], p["groups"]


CASES: dict = {
    "window": Case(lambda r: {"x": r.standard_normal((2, 5, 4))},
                   lambda x: apply("window", [sd.exp(x)], kernel=(2, 2), stride=(2, 1), dilation=(1, 2), out=(2, 2)),
                   lambda x: R.window(np.exp(x), (2, 2), (2, 1), (1, 2), (2, 2))),
    "fold": Case(lambda r: {"x": r.standard_normal((1, 2, 2, 2, 2))},
                 lambda x: apply("fold", [x * x], shape=(4, 5), kernel=(2, 2), stride=(2, 1), dilation=(1, 2)),
                 lambda x: R.fold(x * x, (4, 5), (2, 2), (2, 1), (1, 2))),
    "conv": Case(_xw(_X, _W), lambda x, w: apply("conv", [x, w], **_P), lambda x, w: R.conv(x, w, *_p(_P))),
    "conv_transpose": Case(_xw(_G, _W), lambda x, w: apply("conv_transpose", [x, w], **_P, shape=(4, 4)),
                           lambda x, w: R.conv_transpose(x, w, *_p(_P), (4, 4))),
    "conv_weight": Case(lambda r: {"x": r.standard_normal(_X), "g": r.standard_normal(_G)},
                        lambda x, g: apply("conv_weight", [x, g], **_P, kernel=(2, 2)),
                        lambda x, g: R.conv_weight(x, g, *_p(_P), (2, 2))),
}


def _xwb(sx, sw, nb):
    return lambda r: {"x": r.standard_normal(sx), "w": r.standard_normal(sw), "b": r.standard_normal(nb)}


API_CASES: dict = {
    "conv1d": Case(_xwb((2, 2, 5), (2, 2, 3), 2), lambda x, w, b: sd.conv1d(sd.tanh(x), w, b, padding="same"),
                   lambda x, w, b: R.conv(np.tanh(x), w, (1,), ((1, 1),), (1,), 1) + b[:, None]),
    "conv2d": Case(_xwb((1, 1, 4, 3), (2, 1, 2, 2), 2), lambda x, w, b: sd.conv2d(x, w * w, b, stride=1, padding=(1, 0)),
                   lambda x, w, b: R.conv(x, w * w, (1, 1), ((1, 1), (0, 0)), (1, 1), 1) + b[:, None, None]),
    "conv3d": Case(_xw((1, 1, 3, 2, 3), (1, 1, 2, 1, 2)), lambda x, w: sd.conv3d(x, w, dilation=(1, 1, 2)),
                   lambda x, w: R.conv(x, w, (1, 1, 1), ((0, 0),) * 3, (1, 1, 2), 1)),
    "conv_transpose1d": Case(_xw((1, 2, 3), (2, 1, 2)),
                             lambda x, w: sd.conv_transpose1d(x, w, stride=2, output_padding=1, groups=2),
                             lambda x, w: R.conv_transpose(x, w, (2,), ((0, 0),), (1,), 2, (7,))),
    "conv_transpose2d": Case(_xw((1, 2, 2, 2), (2, 1, 2, 3)),
                             lambda x, w: sd.conv_transpose2d(sd.sin(x), w, stride=(1, 2), padding=(0, 1)),
                             lambda x, w: R.conv_transpose(np.sin(x), w, (1, 2), ((0, 0), (1, 1)), (1, 1), 1, (3, 3))),
}

"""``symdiff.nn``: layers, losses, initialisers, optimizer steps and a training loop on top of the DSL.

Modules build graph pieces and own named parameters (``sd.param`` leaves); losses and regularisers
are scalar graphs; :func:`sgd` turns a loss into the graph of the updated parameters, so forward,
backward and the update compile into one function; :class:`Trainer` runs it over mini-batches.
See docs/nn.md.
"""
from . import functional, init
from .functional import SEED_INPUT, STEP_INPUT, dropout, rng_inputs
from .init import init_values, kaiming_normal, xavier_uniform
from .losses import bce_with_logits, binary_cross_entropy_with_logits, cross_entropy, l1, l2, mse, nll
from .modules import (Add, BatchNorm1d, Dropout, Duplicate, Flatten, Identity, Linear, LogSoftmax, Max, Module,
                      ReLU, Sequential, Sigmoid, Softmax, Tanh)
from .conv import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose2d, Dropout2d,
                   MaxPool2d)
from .optim import Updates, cosine_decay, exponential_decay, sgd, step_decay
from .optimizers import adagrad, adam, adamw, clip_gradients, rmsprop
from .trainer import History, Trainer, accuracy

__all__ = [
    "Module", "Linear", "ReLU", "Sigmoid", "Tanh", "Identity", "Flatten", "Softmax", "LogSoftmax", "Duplicate",
    "Add", "Max", "Dropout", "BatchNorm1d", "Sequential",
    "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "Dropout2d",
    "cross_entropy", "nll", "mse", "binary_cross_entropy_with_logits", "bce_with_logits", "l1", "l2",
    "init", "init_values", "kaiming_normal", "xavier_uniform",
    "functional", "dropout", "rng_inputs", "SEED_INPUT", "STEP_INPUT",
    "sgd", "Updates", "exponential_decay", "step_decay", "cosine_decay",
    "adam", "adamw", "rmsprop", "adagrad", "clip_gradients",
    "Trainer", "History", "accuracy",
]

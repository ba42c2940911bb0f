"""Differentiable ops (``import fastnn.functional as F``).

Each op computes its output from the input arrays and, when grad mode is on
and an input requires a gradient, records a node whose closure maps the
output gradient to input gradients. The ops are device-agnostic: they call
the array namespace of their tensors' device (``fastnn._backend``: C++
kernels for float32 on the CPU, NumPy for other float dtypes such as
float64 for precise gradient checks, CUDA on the GPU). Importing the package
installs Tensor's operators and methods (``_methods.py``).

Losses here take PyTorch's argument order, ``F.mse_loss(input, target)``
(predictions first); ``fastnn.losses`` and ``compile(loss=...)`` take
Keras's, ``loss(y_true, y_pred)``.

One module per family: arithmetic (and matmul, linear), reductions, shapes
(and indexing), activations (elementwise ops), conv (and pooling), rnn,
losses.
"""
from . import _methods  # noqa: F401  (installs Tensor's operators)
from ._plumbing import _tensor
from .activations import (abs, clip, dropout, exp, log, log_softmax, relu, sigmoid, softmax,
                          sqrt, tanh)
from .arithmetic import add, div, linear, matmul, mul, neg, pow, sub
from .conv import avg_pool2d, conv2d, max_pool2d
from .losses import (EPSILON, binary_cross_entropy, categorical_crossentropy, cross_entropy,
                     mse_loss, sparse_categorical_crossentropy)
from .reductions import argmax, max, mean, min, sum
from .rnn import gru, gru_cell, lstm, lstm_cell
from .shapes import concatenate, flip, getitem, permute, reshape, stack, transpose

__all__ = [
    "abs", "add", "argmax", "avg_pool2d", "binary_cross_entropy", "categorical_crossentropy",
    "clip", "concatenate", "conv2d", "cross_entropy", "div",
    "dropout", "exp", "flip", "gru", "gru_cell", "linear", "log", "log_softmax", "lstm", "lstm_cell",
    "matmul", "max", "max_pool2d", "mean", "min", "mse_loss", "mul", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt", "stack", "sub", "sum",
    "sparse_categorical_crossentropy", "tanh", "transpose",
]

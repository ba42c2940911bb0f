"""Keras-style layers on a PyTorch-style ``Module`` (``import fastnn.nn as nn``).

A ``Module`` registers what is assigned to its attributes: another Module
becomes a child, a leaf Tensor that requires grad a parameter, and a Tensor
given to ``register_buffer`` non-trainable state (BatchNormalization's moving
statistics). ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and
``to(device)`` walk that tree.

The layers take Keras's names and arguments and Keras's weight layouts
(docs/api.md). Their weights are created on the first call, their shapes inferred
from the input (or at construction when ``input_shape`` is given), drawn from
``fastnn.manual_seed``'s stream with Keras's default initialisers: Glorot
uniform kernels, zero biases. Layers start in training mode, as PyTorch
modules do: ``eval()`` switches Dropout off and makes BatchNormalization use
its moving statistics.

One module per concern: module (Module, Sequential, ModuleList), layer (the
Layer base), activations (the names), layers (the core layers), recurrent
(LSTM, GRU, Bidirectional).
"""
from .activations import get_activation
from .layer import Layer
from .layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout,
                     Embedding, Flatten, MaxPooling2D)
from .module import Module, ModuleList, Sequential
from .recurrent import GRU, LSTM, Bidirectional

__all__ = [
    "Activation", "AveragePooling2D", "BatchNormalization", "Bidirectional", "Conv2D", "Dense",
    "Dropout", "Embedding", "Flatten", "GRU", "LSTM", "Layer", "MaxPooling2D", "Module",
    "ModuleList", "Sequential", "get_activation",
]

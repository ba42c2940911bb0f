"""Weight penalties as Keras defines them (``keras.regularizers``).

A layer given ``kernel_regularizer=fastnn.regularizers.l2(1e-4)`` reports
the penalty of its kernel in ``model.regularization_losses()``; the training
loss is the data loss plus their sum, ``model.regularization_loss()``, as
Keras adds ``model.losses``::

    loss = F.cross_entropy(model(x), y) + model.regularization_loss()

The penalties are ``l1 * sum(|w|)`` and ``l2 * sum(w ** 2)`` (no factor
1/2), differentiable tensors on the weight's device. ``l1``, ``l2`` and
``l1_l2`` are the classes themselves, as in Keras 3 (L1(l1=0.01),
L2(l2=0.01), L1L2(l1=0.0, l2=0.0)).
"""

import numpy as np

from . import _checks
from . import functional as F
from .tensor import Tensor, tensor

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "l1", "l1_l2", "l2"]


def _factor(value, name, fn):
    return _checks.number(value, name, fn, 0.0, finite=True)


class Regularizer:
    """The base class: ``regularizer(weight) -> scalar Tensor``."""

    def __call__(self, x):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _check_weight(x, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: the weight must be a Tensor, got {type(x).__name__}")
    return x


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x ** 2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", type(self).__name__)
        self.l2 = _factor(l2, "l2", type(self).__name__)

    def __call__(self, x):
        x = _check_weight(x, type(self).__name__)
        penalty = None
        if self.l1:
            penalty = F.sum(F.abs(x)) * self.l1
        if self.l2:
            term = F.sum(x * x) * self.l2
            penalty = term if penalty is None else penalty + term
        if penalty is None:
            zero = tensor(np.zeros((), x.dtype))
            return zero if x.device == "cpu" else zero.to(x.device)
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """l1 * sum(|x|); the gradient at 0 is 0."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """l2 * sum(x ** 2)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2

_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier):
    """A regularizer from what a layer's ``kernel_regularizer`` may be: None,
    a Regularizer or any callable (returned as it is), a name ("l1", "l2",
    "l1_l2", with the defaults) or Keras's config dict {"class_name": ...,
    "config": {...}}."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        return _checks.lookup(_BY_NAME, identifier, "regularizers.get", "regularizer")()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = _checks.lookup(_BY_NAME, str(name), "regularizers.get", "class_name")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(f"regularizers.get: expected None, a name, a dict or a callable, got "
                    f"{type(identifier).__name__}")

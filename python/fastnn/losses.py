"""Keras's losses by their names, for ``compile(loss=...)``.

Every loss here takes Keras's argument order, ``loss(y_true, y_pred)``, and
returns the batch mean as a scalar tensor with gradients (they call the
functional losses, whose order is PyTorch's: ``F.mse_loss(y_pred, y_true)``).
As in Keras, targets whose shape differs from the predictions' only by a
trailing axis of 1 ((batch,) against (batch, 1)) are reshaped to match.

``get(identifier)`` resolves what ``compile(loss=...)`` may be given:
"sparse_categorical_crossentropy", "categorical_crossentropy",
"binary_crossentropy", "mse" / "mean_squared_error", "cross_entropy" (integer
labels against logits), a loss object such as
``SparseCategoricalCrossentropy(from_logits=True)``, or any callable
``loss(y_true, y_pred)``. ``compile`` calls every loss in this order, whatever
form it was given in; ``label_kind(loss)`` says which targets it takes, which
decides what "accuracy" means.
"""
import numpy as np

from . import _checks
from . import functional as F
from .tensor import Tensor

__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Loss", "MeanSquaredError",
           "SparseCategoricalCrossentropy", "binary_crossentropy", "categorical_crossentropy",
           "cross_entropy", "get", "label_kind", "mean_squared_error", "mse",
           "sparse_categorical_crossentropy"]


def _match(y_true, y_pred):
    """y_true reshaped to y_pred's shape when they differ by a trailing 1."""
    pred = tuple(y_pred.shape)
    true = tuple(y_true.shape) if hasattr(y_true, "shape") else np.shape(y_true)
    if true != pred and (true == pred + (1,) or pred == true + (1,)):
        if isinstance(y_true, Tensor):
            return F.reshape(y_true, pred)
        return np.reshape(np.asarray(y_true), pred)
    return y_true


def _pred(y_pred, fn):
    if isinstance(y_pred, Tensor):
        return y_pred
    return F._tensor(y_pred, fn, "y_pred")


def _targets(kind):
    """Marks a loss function with the kind of targets it takes."""
    def mark(fn):
        fn.label_kind = kind
        return fn
    return mark


@_targets("values")
def mean_squared_error(y_true, y_pred):
    """mean((y_pred - y_true) ** 2) over all elements."""
    y_pred = _pred(y_pred, "mean_squared_error")
    return F.mse_loss(y_pred, _match(y_true, y_pred))


mse = mean_squared_error


@_targets("binary")
def binary_crossentropy(y_true, y_pred, from_logits=False):
    """F.binary_cross_entropy(y_pred, y_true, from_logits)."""
    y_pred = _pred(y_pred, "binary_crossentropy")
    return F.binary_cross_entropy(y_pred, _match(y_true, y_pred), from_logits=from_logits)


@_targets("onehot")
def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """F.categorical_crossentropy(y_pred, y_true, from_logits): one-hot targets."""
    return F.categorical_crossentropy(y_pred, y_true, from_logits=from_logits)


@_targets("sparse")
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """F.sparse_categorical_crossentropy(y_pred, y_true, from_logits): integer targets."""
    return F.sparse_categorical_crossentropy(y_pred, y_true, from_logits=from_logits)


@_targets("sparse")
def cross_entropy(y_true, y_pred):
    """F.cross_entropy(y_pred, y_true): integer targets against logits."""
    return F.cross_entropy(y_pred, y_true)


class Loss:
    """A loss with its options: ``loss(y_true, y_pred) -> scalar tensor``."""
    _fn = None

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        return type(self)._fn(y_true, y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class BinaryCrossentropy(Loss):
    _fn = staticmethod(binary_crossentropy)


class CategoricalCrossentropy(Loss):
    _fn = staticmethod(categorical_crossentropy)


class SparseCategoricalCrossentropy(Loss):
    _fn = staticmethod(sparse_categorical_crossentropy)


class MeanSquaredError(Loss):
    _fn = staticmethod(mean_squared_error)

    def __init__(self):
        super().__init__(False)

    def __call__(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)

    def get_config(self):
        return {}

    def __repr__(self):
        return "MeanSquaredError()"


_BY_NAME = {
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "cross_entropy": cross_entropy,
}


def get(identifier):
    """The loss function ``loss(y_true, y_pred)`` for a Keras name (any case),
    a Loss class (instantiated with its defaults), or a Loss object or other
    callable (returned as it is). ValueError for an unknown name."""
    if isinstance(identifier, str):
        return _checks.lookup(_BY_NAME, identifier, "losses.get", "loss")
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and getattr(identifier, "__module__", "").startswith(F.__name__):
        raise ValueError(f"losses.get: fastnn.functional.{identifier.__name__} takes "
                         f"(input, target), PyTorch's order, but a compiled loss is called as "
                         f"loss(y_true, y_pred); pass the loss's name or a fastnn.losses loss")
    if callable(identifier):
        return identifier
    raise TypeError(f"losses.get: argument 'identifier' must be a loss name or a callable, got "
                    f"{type(identifier).__name__}")


def label_kind(loss):
    """The targets a loss (as ``get`` returns it) takes: "sparse" (integer
    labels), "onehot", "binary", "values", or None for a callable of the
    user's own."""
    fn = type(loss)._fn if isinstance(loss, Loss) else loss
    return getattr(fn, "label_kind", None)

"""Keras's utilities: ``to_categorical`` and ``clear_session``."""
import numbers

import numpy as np

from ._naming import clear_session

__all__ = ["clear_session", "to_categorical"]


def to_categorical(x, num_classes=None):
    """One-hot float32 rows for integer class labels, as Keras's
    ``to_categorical``: labels of shape (n,) or (n, 1) give (n, num_classes);
    other shapes get a last axis of num_classes (a trailing axis of 1 is
    dropped first). num_classes defaults to the largest label + 1."""
    y = np.asarray(x)
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueError(f"to_categorical: argument 'x' must hold integer class labels, got "
                         f"dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"to_categorical: argument 'num_classes' must be a positive int, got "
                         f"{num_classes!r}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, num_classes={num_classes}), got "
                         f"[{y.min()}, {y.max()}]")
    out = np.zeros(y.shape + (int(num_classes),), np.float32)
    np.put_along_axis(out, y[..., None], 1.0, axis=-1)
    return out

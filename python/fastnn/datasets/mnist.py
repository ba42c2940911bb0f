"""MNIST from Keras's ``mnist.npz``, read from disk (never downloaded).

Put ``mnist.npz`` (the file Keras downloads, with the arrays ``x_train``,
``y_train``, ``x_test``, ``y_test``) in ``$FASTNN_DATA`` (default
``~/.cache/fastnn``) or in Keras's cache folder (``$KERAS_HOME/datasets``,
default ``~/.keras/datasets``), or pass its place as ``path``. It is read
with ``allow_pickle=False``: a file holding pickled objects is refused.
"""
import os
import zipfile

import numpy as np

from . import _cache

__all__ = ["FILE", "URL", "load_data"]

FILE = "mnist.npz"
URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
_HOW_TO_GET = (f"download '{FILE}' from {URL} and put it in $FASTNN_DATA (default "
               f"~/.cache/fastnn) or in Keras's cache folder ($KERAS_HOME/datasets, default "
               f"~/.keras/datasets), or pass its place as 'path'")
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_data(path=None):
    """((x_train, y_train), (x_test, y_test)) as Keras's ``mnist.load_data()``:
    x uint8 (n, 28, 28), y int64 (n,) class labels 0-9 (Keras: uint8).

    path: the ``mnist.npz`` file or a folder holding it; default: the first
    found in ``$FASTNN_DATA`` (else ``~/.cache/fastnn``), then in Keras's
    cache. FileNotFoundError when there is none, ValueError when the file is
    damaged, holds pickles, or is not MNIST-shaped."""
    source = _find(path)
    try:
        with np.load(source, allow_pickle=False) as f:
            missing = [k for k in _KEYS if k not in f.files]
            if missing:
                raise ValueError(f"it lacks the arrays {missing}")
            arrays = {k: f[k] for k in _KEYS}
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise ValueError(f"mnist.load_data: {source} is damaged or not Keras's {FILE} "
                         f"({type(e).__name__}: {e}); {_HOW_TO_GET}") from None
    out = []
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.dtype != np.uint8 or x.ndim != 3:
            raise ValueError(f"mnist.load_data: x_{split} in {source} must be a uint8 array of "
                             f"shape (n, height, width), got {x.dtype} {x.shape}")
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise ValueError(f"mnist.load_data: y_{split} in {source} must be {len(x)} integer "
                             f"labels, got {y.dtype} {y.shape}")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"mnist.load_data: y_{split} in {source} must be in [0, 9], got "
                             f"[{y.min()}, {y.max()}]")
        out.append((x, y.astype(np.int64)))
    return tuple(out)


def _find(path):
    places = _cache.places(path, "mnist.load_data")
    if isinstance(places, str):
        return places  # the file itself
    for where, _ in places:
        candidate = os.path.join(where, FILE)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"mnist.load_data: no '{FILE}' in {_cache.describe(places)}; "
                            f"{_HOW_TO_GET}")

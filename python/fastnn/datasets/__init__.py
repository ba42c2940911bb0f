"""Image sets in the format of Keras's ``load_data()``:
``((x_train, y_train), (x_test, y_test))``, x uint8 (n, 32, 32, 3) NHWC,
y int64 (n, 1) (Keras gives uint8 labels; fastnn's integer labels are int64);
MNIST's are x uint8 (n, 28, 28), y int64 (n,), as Keras shapes them.

- ``cifar10.load_data(path=None)`` reads the official CIFAR-10 Python archive
  from disk; it never downloads.
- ``mnist.load_data(path=None)`` reads Keras's ``mnist.npz`` from disk.
- ``shapes.load_data()`` is the embedded default: a generated, seeded
  10-class set, drawn on first use and cached.

Files live in ``$FASTNN_DATA`` when it is set, else in ``~/.cache/fastnn``;
``cifar10`` and ``mnist`` also look in Keras's cache folder
(``$KERAS_HOME/datasets``, default ``~/.keras/datasets``).
"""
from . import cifar10, mnist, shapes
from ._cache import data_dir, keras_dir

__all__ = ["cifar10", "data_dir", "keras_dir", "mnist", "shapes"]

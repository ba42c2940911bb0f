"""Keras's datasets, read from disk only: ``cifar10.load_data()`` and
``mnist.load_data()`` look in ``$FASTNN_DATA``, then in Keras's cache folder
(``$KERAS_HOME/datasets``, default ``~/.keras/datasets``)."""
from ..datasets import cifar10, mnist

__all__ = ["cifar10", "mnist"]

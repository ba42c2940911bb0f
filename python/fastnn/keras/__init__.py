"""``fastnn.keras``: Keras 3's interface over fastnn, so that Keras code runs
with ``tensorflow`` replaced by ``fastnn`` in its imports::

    import fastnn as tf
    from fastnn.keras.layers import Conv2D, Dense
    model = tf.keras.Sequential([...])

Submodules: ``models``, ``layers``, ``optimizers``, ``losses``, ``metrics``,
``callbacks``, ``regularizers``, ``activations``, ``datasets``,
``preprocessing.image``, ``utils``, ``backend``. Each is a thin layer over
the fastnn module of the same role; docs/keras.md says what is covered and
every difference from Keras 3.
"""
from . import (activations, backend, callbacks, datasets, layers, losses, metrics, models,
               optimizers, preprocessing, regularizers, utils)
from .layers import Input
from .models import Sequential

__all__ = ["Input", "Sequential", "activations", "backend", "callbacks", "datasets", "layers",
           "losses", "metrics", "models", "optimizers", "preprocessing", "regularizers", "utils"]

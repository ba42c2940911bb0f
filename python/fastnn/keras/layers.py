"""Keras's layers: every layer of ``fastnn.nn`` under its own name, taking
Keras's ``name`` argument and named as Keras names layers when it is left out
(``conv2d``, ``conv2d_1``, ``max_pooling2d``, ...), plus ``Input`` /
``InputLayer`` to give a Sequential model its input shape.

Each class here is a subclass of the ``fastnn.nn`` class of the same name,
so the arguments, weights, layouts and errors are fastnn's (docs/api.md);
``docs/keras.md`` lists where they differ from Keras 3.
"""
import inspect
import numbers

import numpy as np

from .. import nn
from . import _naming

__all__ = ["Input", "InputLayer", "Layer"]

Layer = nn.Layer


# where Keras 3's default differs from fastnn.nn's (API.md fixes nn.GRU's)
_KERAS_DEFAULTS = {"GRU": {"reset_after": True}}


def _keras_class(base):
    """A subclass of the fastnn layer class ``base`` that takes ``name`` and
    Keras 3's defaults."""
    defaults = _KERAS_DEFAULTS.get(base.__name__, {})

    def __init__(self, *args, name=None, **kwargs):
        given = signature.bind_partial(self, *args, **kwargs).arguments
        kwargs.update({k: v for k, v in defaults.items() if k not in given})
        base.__init__(self, *args, **kwargs)
        self.name = _naming.unique(name, type(self).__name__)
        # what Sequential builds the model from, as Keras does at once
        shape = signature.bind(self, *args, **kwargs).arguments.get("input_shape")
        self._keras_input_shape = None if shape is None else tuple(np.atleast_1d(shape).tolist())

    def get_config(self):
        # names are a Keras-side label: the file stays readable by fastnn.models.load_model
        config = base.get_config(self)
        config["config"].pop("name", None)
        return config

    # the base's signature plus `name`, so that saving records the real arguments
    signature = inspect.signature(base.__init__)
    params = [p.replace(default=defaults[p.name]) if p.name in defaults else p
              for p in signature.parameters.values()]
    keyword = inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD),
              len(params))
    params.insert(at, keyword)
    __init__.__signature__ = signature.replace(parameters=params)
    return type(base.__name__, (base,), {
        "__init__": __init__, "get_config": get_config, "__module__": __name__,
        "__qualname__": base.__name__,
        "__doc__": f"fastnn.nn.{base.__name__} with Keras's ``name`` argument.\n\n"
                   f"{base.__doc__ or ''}"})


# fastnn layer class -> its Keras twin here
KERAS_CLASSES = {}
for _name in nn.__all__:
    _base = getattr(nn, _name)
    if isinstance(_base, type) and issubclass(_base, nn.Layer) and _base is not nn.Layer:
        KERAS_CLASSES[_base] = globals()[_name] = _keras_class(_base)
        __all__.append(_name)
del _name, _base
__all__.sort()


def adopt(layer):
    """Makes a fastnn layer (as load_model rebuilds it) its Keras twin, named."""
    twin = KERAS_CLASSES.get(type(layer))
    if twin is not None:
        layer.__class__ = twin
    if not isinstance(getattr(layer, "name", None), str):
        layer.name = _naming.unique(None, type(layer).__name__)
    return layer


class InputLayer:
    """The input of a Sequential model: its shape without the batch axis.
    Give it (or ``Input(shape)``) as the first layer; the model is then built
    at once, as Keras builds it. It holds no weights and is not one of
    ``model.layers``, as in Keras 3."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("InputLayer: give 'shape' or 'batch_shape', not both")
            batch_shape = tuple(batch_shape)
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("InputLayer: argument 'shape' is required (the input's shape "
                             "without the batch axis, e.g. (32, 32, 3))")
        if isinstance(shape, numbers.Integral):
            shape = (shape,)
        try:
            shape = tuple(None if s is None else int(s) for s in shape)
        except TypeError:
            raise TypeError(f"InputLayer: argument 'shape' must be a tuple of ints, got "
                            f"{shape!r}") from None
        if any(s is not None and s < 1 for s in shape):
            raise ValueError(f"InputLayer: the sizes in 'shape' must be positive, got {shape}")
        self.shape = shape
        self.batch_size = batch_size
        self.dtype = dtype
        self.name = _naming.unique(name, "InputLayer")

    def __repr__(self):
        return f"InputLayer(shape={self.shape}, name={self.name!r})"


def Input(shape=None, batch_size=None, dtype=None, batch_shape=None, name=None):
    """The input of a Sequential model (Keras's ``keras.Input``): here an
    ``InputLayer``, not a symbolic tensor, so it can start a ``Sequential``
    but the functional API (``Model(inputs, outputs)``) is not offered."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape,
                      name=name)

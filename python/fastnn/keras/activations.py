"""Keras's activations, as functions of a tensor (``activations.relu(x)``),
and ``get(name)``: the functions fastnn's layers use for the same names
(``nn.get_activation``); the names this fastnn knows are ``__all__``."""
from .. import nn

_KERAS_NAMES = ("relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "gelu", "silu",
                "swish", "softplus", "softsign", "leaky_relu", "hard_sigmoid", "exponential")

__all__ = ["get"]
for _name in _KERAS_NAMES:
    try:
        globals()[_name] = nn.get_activation(_name)
    except ValueError:
        continue  # a name this build's layers do not know
    __all__.append(_name)
del _name


def get(identifier):
    """The activation function for a name (None is "linear") or a callable."""
    return nn.get_activation(identifier)

"""Activations by name, for ``activation=`` and ``Activation``: one table
entry per name over its op in ``fastnn.functional``.

Adding an activation: its op in functional/activations.py (a kernel-backed
one is ``name = _activation("name", doc)`` and its name in ``__all__``, with
the kernels under that name in ``fastnn._backend``), then one entry here."""
from .. import _checks
from .. import functional as F


def _linear(x):
    return x


_ACTIVATIONS = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": F.softmax,
    "linear": _linear,
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.swish,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "leaky_relu": F.leaky_relu,
    "hard_sigmoid": F.hard_sigmoid,
    "exponential": F.exponential,
}


def get_activation(activation):
    """The function for an activation name (Keras's: "relu", "sigmoid",
    "tanh", "softmax", "linear", "elu", "selu", "gelu", "silu"/"swish",
    "softplus", "softsign", "leaky_relu", "hard_sigmoid", "exponential"; None
    is "linear") or the callable itself."""
    if activation is None:
        return _linear
    if isinstance(activation, str):
        return _checks.lookup(_ACTIVATIONS, activation, "activation", "name")
    if callable(activation):
        return activation
    raise TypeError(f"activation: argument must be a name or a callable, got "
                    f"{type(activation).__name__}")


def _activation_name(activation):
    if activation is None or isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", repr(activation))

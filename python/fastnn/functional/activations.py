"""Elementwise ops and activations: exp, log, sqrt, abs, clip, relu,
sigmoid, tanh, softmax, log_softmax, dropout.

softmax (over the last axis) and sigmoid mark their output with the input
they were computed from (the tensor's ``_made_by`` slot), so that a
probability loss on it can be computed from the logits (losses.py)."""
import numpy as np

from .. import _checks, _random
from ._plumbing import _axes, _mode, _record, _tensor, _wrap, _xp

__all__ = ["abs", "clip", "dropout", "exp", "log", "log_softmax", "relu", "sigmoid", "softmax",
           "sqrt", "tanh"]


def _made_by(out, kind, x):
    """out, marked as computed from x by `kind` ("softmax" or "sigmoid")."""
    out._made_by = (kind, x)
    return out


def made_from(p, kind):
    """The tensor that p was computed from by `kind`, or None."""
    made = getattr(p, "_made_by", None)
    return made[1] if made is not None and made[0] == kind else None


def _unary_input(x, fn):
    x = _tensor(x, fn)
    xp = _xp(fn, x)
    d = x._data
    if d.dtype.kind != "f":
        d = d.astype(np.float32)
    return x, d, xp


def clip(x, min=None, max=None):
    """x limited to [min, max]; the gradient passes where min <= x <= max."""
    x, d, xp = _unary_input(x, "clip")
    if min is None and max is None:
        raise ValueError("clip: at least one of 'min' and 'max' must be given")
    out = xp.clip(d, min, max)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    # inside the bounds (ends included) clipping changed nothing
    return _record(out, (x,), lambda g: (xp.mul(g, xp.eq(out, d)),), "ClipBackward")


def _elementwise(name, forward, backward, doc):
    """An elementwise op: forward(xp, x) -> y, backward(xp, g, x, y) -> dx."""
    label = name.capitalize() + "Backward"

    def op(x):
        x, d, xp = _unary_input(x, name)
        out = forward(xp, d)
        if not (_mode.enabled and x._rg):
            return _wrap(out)
        return _record(out, (x,), lambda g: (backward(xp, g, d, out),), label)
    op.__name__ = name
    op.__doc__ = doc
    return op


def _activation(name, doc):
    """An activation on the kernels, its backward written through the output."""
    op = _elementwise(name, lambda xp, x: xp.activation(name, x),
                      lambda xp, g, x, y: xp.activation_backward(name, y, g), doc)
    if name != "sigmoid":
        return op

    def sigmoid(x):
        x = _tensor(x, name)
        return _made_by(op(x), "sigmoid", x)  # for binary_cross_entropy
    sigmoid.__doc__ = doc
    return sigmoid


exp = _elementwise("exp", lambda xp, x: xp.exp(x), lambda xp, g, x, y: xp.mul(g, y), "e ** x.")
log = _elementwise("log", lambda xp, x: xp.log(x), lambda xp, g, x, y: xp.div(g, x),
                   "Natural logarithm.")
sqrt = _elementwise("sqrt", lambda xp, x: xp.sqrt(x),
                    lambda xp, g, x, y: xp.div(xp.mul(g, 0.5), y), "Square root.")
abs = _elementwise("abs", lambda xp, x: xp.abs(x),
                   lambda xp, g, x, y: xp.mul(g, xp.sign(x)), "|x| (gradient sign(x), 0 at 0).")
relu = _activation("relu", "max(x, 0).")
sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)).")
tanh = _activation("tanh", "Hyperbolic tangent.")


# ---------------------------------------------------------------- Keras's activations
# Thin ops over the kernels of csrc/fastnn/pointwise_math.h's list, their
# gradient taken through the input; float32 on either device.
def _kernel_activation(name, doc=None):
    label = "".join(part.capitalize() for part in name.split("_")) + "Backward"

    def op(x, **param):
        x, d, xp = _unary_input(x, name)
        out = xp.pointwise(name, d, **param)
        if not (_mode.enabled and x._rg):
            return _wrap(out)
        return _record(out, (x,), lambda g: (xp.pointwise_backward(name, d, g, **param),), label)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


_elu, _leaky_relu = _kernel_activation("elu"), _kernel_activation("leaky_relu")
_gelu, _gelu_tanh = _kernel_activation("gelu"), _kernel_activation("gelu_tanh")


def elu(x, alpha=1.0):
    """x where x > 0, alpha * (exp(x) - 1) elsewhere."""
    return _elu(x, alpha=_checks.real(alpha, "alpha", "elu"))


def leaky_relu(x, negative_slope=0.2):
    """x where x > 0, negative_slope * x elsewhere (Keras's default slope 0.2)."""
    return _leaky_relu(x, negative_slope=_checks.real(negative_slope, "negative_slope",
                                                       "leaky_relu"))


def gelu(x, approximate=False):
    """x * Phi(x), Phi the standard normal CDF (erf form); with approximate,
    x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return (_gelu_tanh if approximate else _gelu)(x)


selu = _kernel_activation(
    "selu", "scale * elu(x, alpha) with SELU's scale 1.0507... and alpha 1.6733....")
silu = _kernel_activation("silu", "x * sigmoid(x) (Keras's swish).")
swish = silu
softplus = _kernel_activation("softplus", "log(1 + exp(x)), exact for large |x|.")
softsign = _kernel_activation("softsign", "x / (1 + |x|).")
hard_sigmoid = _kernel_activation("hard_sigmoid", "relu6(x + 3) / 6 (Keras 3's hard_sigmoid).")
exponential = _kernel_activation("exponential", "exp(x), Keras's activation of that name.")
__all__ += ["elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "selu", "silu",
            "softplus", "softsign", "swish"]


def _row_op(name, doc):
    """softmax or log_softmax along an axis: the row kernel over the last
    axis, the axis moved there (and back) when it is another."""
    label = name.replace("_", " ").title().replace(" ", "") + "Backward"

    def op(x, axis=-1):
        x, d, xp = _unary_input(x, name)
        if d.ndim == 0:
            raise ValueError(f"{name}: argument 'x' must have at least 1 dimension, got a scalar")
        ax = _axes(axis, d.ndim, name)[0]
        last = ax == d.ndim - 1
        m = d if last and xp.is_contiguous(d) else xp.move_last(d, ax)
        y = xp.rows(name, m)
        out = y if last else xp.move_back(y, ax)
        noted = last and name == "softmax"  # for the categorical cross-entropies
        if not (_mode.enabled and x._rg):
            return _made_by(_wrap(out), name, x) if noted else _wrap(out)

        def backward(g):
            gm = g if last and xp.is_contiguous(g) else xp.move_last(g, ax)
            gx = xp.rows_backward(name, y, gm)
            return (gx if last else xp.move_back(gx, ax),)
        result = _record(out, (x,), backward, label)
        return _made_by(result, name, x) if noted else result
    op.__name__ = name
    op.__doc__ = doc
    return op


softmax = _row_op("softmax", "exp(x) / sum(exp(x)) along ``axis`` (default the last).")
log_softmax = _row_op("log_softmax", "log(softmax(x)) along ``axis``, computed stably.")


def dropout(x, rate, training=True):
    """Zeroes each element with probability ``rate`` and scales the others by
    1 / (1 - rate) while training; the identity otherwise. The mask comes from
    fastnn.manual_seed's stream and does not depend on the thread count (nor
    on the device)."""
    rate = _checks.number(rate, "rate", "dropout", 0.0, 1.0, high_open=True)
    if np.float32(rate) >= 1:  # the kernels take it as float32
        raise ValueError(f"dropout: argument 'rate' must be in [0, 1) as a float32, got {rate!r}")
    x = _tensor(x, "dropout")
    if not training or rate == 0:
        return x
    x, d, xp = _unary_input(x, "dropout")
    key = _random.next_key()
    out = xp.dropout(d, rate, key)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,), lambda g: (xp.dropout(g, rate, key),), "DropoutBackward")

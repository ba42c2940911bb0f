"""References for the autograd ops that run C++ kernels or have formulas
worth checking, in float64.

Each op has ``<op>_forward(inputs...) -> out`` and
``<op>_backward(dout, inputs...) -> grads``: the gradients as a tuple with
one array per differentiable input, in the order of the inputs. A backward
recomputes what it needs from the inputs. Written to be obviously right,
not fast; nothing here imports fastnn.
"""
import math

import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------- activations
def relu_forward(x):
    x = _f64(x)
    return np.where(x > 0, x, 0.0)


def relu_backward(dout, x):
    """The gradient passes where x > 0; at x == 0 it is 0."""
    return (np.where(_f64(x) > 0, _f64(dout), 0.0),)


def sigmoid_forward(x):
    """1 / (1 + e^-x), in a form where nothing overflows."""
    x = _f64(x)
    z = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def sigmoid_backward(dout, x):
    """sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)) = sigmoid(x) * sigmoid(-x);
    the second form keeps its relative precision for large |x|."""
    x = _f64(x)
    return (_f64(dout) * sigmoid_forward(x) * sigmoid_forward(-x),)


def tanh_forward(x):
    return np.tanh(_f64(x))


def tanh_backward(dout, x):
    """tanh'(x) = 1 / cosh(x)^2 (which, unlike 1 - tanh^2, keeps its relative
    precision for large |x|; cosh overflowing to inf gives the right 0)."""
    with np.errstate(over="ignore"):
        return (_f64(dout) / np.cosh(_f64(x)) ** 2,)


# relu, sigmoid and tanh as a device kernel computes them: name -> (forward(x),
# backward(dout, y)) with the gradient taken through the output y, as their
# kernels' backward takes it (Keras's other activations, in ACTIVATIONS
# below, take the input). The GPU stand-in (tests/fake_cuda.py) runs
# these, so a new activation is written once, here.
def _relu_grad(dout, y):
    return np.where(_f64(y) > 0, _f64(dout), 0.0)


def _sigmoid_grad(dout, y):
    y = _f64(y)
    return _f64(dout) * y * (1.0 - y)


def _tanh_grad(dout, y):
    y = _f64(y)
    return _f64(dout) * (1.0 - y * y)


OUTPUT_GRAD_ACTIVATIONS = {
    "relu": (relu_forward, _relu_grad),
    "sigmoid": (sigmoid_forward, _sigmoid_grad),
    "tanh": (tanh_forward, _tanh_grad),
}


# ---------------------------------------------------------------- softmax family
def softmax_forward(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, shifted by the maximum so nothing overflows."""
    x = _f64(x)
    if x.size == 0:
        return x.copy()
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dout, x, axis=-1):
    """dx = y * (dout - sum(dout * y)) along axis, y = softmax(x)."""
    y = softmax_forward(x, axis)
    dout = _f64(dout)
    return (y * (dout - (dout * y).sum(axis=axis, keepdims=True)),)


def log_softmax_forward(x, axis=-1):
    """(x - max) - log(sum(exp(x - max))) along axis."""
    x = _f64(x)
    if x.size == 0:
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax_backward(dout, x, axis=-1):
    """dx = dout - softmax(x) * sum(dout) along axis."""
    dout = _f64(dout)
    return (dout - softmax_forward(x, axis) * dout.sum(axis=axis, keepdims=True),)


# ---------------------------------------------------------------- losses
def cross_entropy_forward(logits, labels):
    """Mean over the rows of -log softmax(row)[label]: logits (N, C), labels (N,)."""
    logits = _f64(logits)
    rows = np.arange(logits.shape[0])
    return np.mean(-log_softmax_forward(logits, axis=1)[rows, labels])


def cross_entropy_backward(dout, logits, labels):
    """dlogits = dout * (softmax(logits) - onehot(labels)) / N."""
    logits = _f64(logits)
    n = logits.shape[0]
    grad = softmax_forward(logits, axis=1)
    grad[np.arange(n), labels] -= 1.0
    return (_f64(dout) * grad / n,)


def mse_loss_forward(y, t):
    """Mean over all elements of (y - t)^2."""
    return np.mean((_f64(y) - _f64(t)) ** 2)


def mse_loss_backward(dout, y, t):
    """dy = 2 dout (y - t) / n, dt = -dy."""
    diff = _f64(y) - _f64(t)
    dy = 2.0 * _f64(dout) * diff / diff.size
    return dy, -dy


# ---------------------------------------------------------------- linear
def linear_forward(x, w, b=None):
    """x @ w + b: x (..., in), w (in, out), b (out,) -> (..., out)."""
    out = _f64(x) @ _f64(w)
    return out if b is None else out + _f64(b)


def linear_backward(dout, x, w, b=None):
    """(dx, dw) or (dx, dw, db): dx = dout @ w.T, dw = sum over the leading
    axes of x.T @ dout, db = dout summed over the leading axes."""
    x, w, dout = _f64(x), _f64(w), _f64(dout)
    n_in, n_out = w.shape
    x2 = x.reshape(int(np.prod(x.shape[:-1])), n_in)
    dout2 = dout.reshape(x2.shape[0], n_out)
    dx = (dout2 @ w.T).reshape(x.shape)
    dw = x2.T @ dout2
    if b is None:
        return dx, dw
    return dx, dw, dout2.sum(axis=0)


# ---------------------------------------------------------------- max
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % ndim for a in axes))


def max_forward(x, axis=None, keepdims=False):
    return np.max(_f64(x), axis=axis, keepdims=keepdims)


def max_backward(dout, x, axis=None, keepdims=False):
    """The gradient of each maximum goes to the elements equal to it, split
    equally among them (a tie of k elements gives each dout / k)."""
    x = _f64(x)
    axes = _axes(axis, x.ndim)
    dout = _f64(dout)
    if not keepdims:
        dout = np.expand_dims(dout, axes)
    winners = x == x.max(axis=axes, keepdims=True)
    count = winners.sum(axis=axes, keepdims=True)
    return (np.where(winners, dout / count, 0.0),)


# ---------------------------------------------------------------- dropout
def dropout_forward(x, keep, rate):
    """x where keep (a boolean mask) is set, scaled by 1 / (1 - rate); 0 elsewhere."""
    return np.where(keep, _f64(x) / (1.0 - rate), 0.0)


def dropout_backward(dout, keep, rate):
    """The same mask and scale applied to dout."""
    return (np.where(keep, _f64(dout) / (1.0 - rate), 0.0),)


# ---------------------------------------------------------------- Keras's activations
# PyTorch's formulas in float64, each ``f(x, p)`` and its derivative
# ``grad(x, p)`` at the input (p: the parameter, where the activation has
# one). ACTIVATIONS maps the kernel names (fastnn._C / _C_cuda and
# tests/fake_cuda.py) to (f, grad, name of the parameter or None, its default).
_erfc = np.frompyfunc(math.erfc, 1, 1)
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_GELU_K0 = math.sqrt(2.0 / math.pi)
_GELU_K1 = 0.044715


def _normal_cdf(x):
    return 0.5 * _erfc(-x / math.sqrt(2.0)).astype(np.float64)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_grad(x, alpha):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0)))


def _gelu_tanh_parts(x):
    return np.tanh(_GELU_K0 * (x + _GELU_K1 * x ** 3))


def _sigmoid(x):
    return sigmoid_forward(x)


ACTIVATIONS = {
    "elu": (_elu, _elu_grad, "alpha", 1.0),
    "selu": (lambda x, p: _SELU_SCALE * _elu(x, _SELU_ALPHA),
             lambda x, p: _SELU_SCALE * _elu_grad(x, _SELU_ALPHA), None, None),
    "gelu": (lambda x, p: x * _normal_cdf(x),
             lambda x, p: _normal_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
             None, None),
    "gelu_tanh": (lambda x, p: 0.5 * x * (1 + _gelu_tanh_parts(x)),
                  lambda x, p: (0.5 * (1 + _gelu_tanh_parts(x)) + 0.5 * x
                                * (1 - _gelu_tanh_parts(x) ** 2) * _GELU_K0
                                * (1 + 3 * _GELU_K1 * x * x)), None, None),
    "silu": (lambda x, p: x * _sigmoid(x),
             lambda x, p: _sigmoid(x) * (1 + x * _sigmoid(-x)), None, None),
    "softplus": (lambda x, p: np.logaddexp(0.0, x), lambda x, p: _sigmoid(x), None, None),
    "softsign": (lambda x, p: x / (1 + np.abs(x)), lambda x, p: 1 / (1 + np.abs(x)) ** 2,
                 None, None),
    "leaky_relu": (lambda x, p: np.where(x > 0, x, p * x),
                   lambda x, p: np.where(x > 0, 1.0, p), "negative_slope", 0.2),
    "hard_sigmoid": (lambda x, p: np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, x / 6 + 0.5)),
                     lambda x, p: np.where((x > -3) & (x < 3), 1 / 6, 0.0), None, None),
    "exponential": (lambda x, p: np.exp(x), lambda x, p: np.exp(x), None, None),
}


def activation_forward(name, x, param=None):
    f, _, _, default = ACTIVATIONS[name]
    with np.errstate(over="ignore", invalid="ignore"):
        return f(_f64(x), default if param is None else param)


def activation_backward(name, dout, x, param=None):
    _, grad, _, default = ACTIVATIONS[name]
    with np.errstate(over="ignore", invalid="ignore"):
        return (_f64(dout) * grad(_f64(x), default if param is None else param),)

"""Keras's core layers: Dense, Conv2D, MaxPooling2D, AveragePooling2D,
Flatten, Dropout, Activation, BatchNormalization, Embedding."""
import math

import numpy as np

from .. import _checks
from .. import functional as F
from ..autograd import no_grad
from ..functional.conv import _conv2d_relu_max_pool
from ..tensor import Tensor
from .activations import _activation_name, get_activation
from .layer import Layer


def _compact(pair):
    """(a, a) as a, the form the functional ops take most directly."""
    return pair[0] if pair[0] == pair[1] else pair


class Dense(Layer):
    """y = activation(x @ kernel + bias): kernel (in, units), bias (units,).
    x may have leading axes: (..., in) -> (..., units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_regularizer=None,
                 input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        self.units = _checks.integer(units, "units", "Dense", low=1)
        self._output_options(activation, use_bias, kernel_regularizer)
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) < 1:
            raise ValueError(f"Dense: expected an input of shape (..., features), got a "
                             f"scalar of shape {shape}")

    def build(self, input_shape):
        n_in = input_shape[-1]
        self._weight("kernel", (n_in, self.units), "glorot_uniform", fan=(n_in, self.units))
        if self.use_bias:
            self._weight("bias", (self.units,), "zeros")

    def _check_built(self, shape):
        n_in = self.kernel.shape[0]
        if shape[-1] != n_in:
            raise ValueError(f"Dense: expected an input of shape (..., {n_in}) (the layer was "
                             f"built for {n_in} input features), got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        return self._act(F.linear(x, self.kernel, self.bias))

    def extra_repr(self):
        return f"units={self.units}" + self._options_repr()


class Conv2D(Layer):
    """2-D convolution of NHWC images: kernel (kh, kw, in, filters) (HWIO),
    bias (filters,); padding "valid" or "same" (Keras's rule)."""
    _input_axes = "(batch, height, width, channels)"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 use_bias=True, dilation_rate=1, input_shape=None, kernel_regularizer=None,
                 dtype=None):
        super().__init__(input_shape, dtype)
        self.filters = _checks.integer(filters, "filters", "Conv2D", low=1)
        self.kernel_size = _checks.pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _checks.pair(strides, "strides", "Conv2D")
        self.padding = _checks.padding(padding, "Conv2D")
        self.dilation_rate = _checks.pair(dilation_rate, "dilation_rate", "Conv2D")
        self._output_options(activation, use_bias, kernel_regularizer)
        self._build_from_argument()

    def build(self, input_shape):
        kh, kw = self.kernel_size
        cin = input_shape[-1]
        self._weight("kernel", (kh, kw, cin, self.filters), "glorot_uniform",
                     fan=(kh * kw * cin, kh * kw * self.filters))
        if self.use_bias:
            self._weight("bias", (self.filters,), "zeros")

    def _check_built(self, shape):
        cin = self.kernel.shape[2]
        if shape[-1] != cin:
            raise ValueError(f"Conv2D: expected an input of shape (batch, height, width, {cin}) "
                             f"(the layer was built for {cin} channels), got shape {shape}")

    def _relu(self):
        return isinstance(self.activation, str) and self.activation.lower() == "relu"

    def forward(self, x):
        x = self._prepare(x)
        args = dict(stride=_compact(self.strides), padding=self.padding,
                    dilation=_compact(self.dilation_rate))
        if self._relu():
            return F.conv2d(x, self.kernel, self.bias, activation="relu", **args)
        return self._act(F.conv2d(x, self.kernel, self.bias, **args))

    def _forward_with(self, following, x):
        """A ReLU convolution and the max pool after it whose windows tile its
        output, in one op: its output is pooled as it is computed."""
        # subclasses that compute something else (their own forward or __call__) are left
        # alone, and so is a pool that checks its input's shape (built with input_shape)
        if not (isinstance(following, MaxPooling2D) and self._relu()
                and type(self).forward is Conv2D.forward
                and type(following).forward is MaxPooling2D.forward
                and type(self).__call__ is Layer.__call__
                and type(following).__call__ is Layer.__call__
                and following._input_shape is None
                and following.strides == following.pool_size and following.padding == "valid"):
            return None
        x = self._prepare(x)
        return _conv2d_relu_max_pool(x, self.kernel, self.bias, _compact(self.strides),
                                     self.padding, _compact(self.dilation_rate),
                                     _compact(following.pool_size))

    def extra_repr(self):
        s = f"filters={self.filters}, kernel_size={self.kernel_size}"
        if self.strides != (1, 1):
            s += f", strides={self.strides}"
        if self.padding != "valid":
            s += f", padding={self.padding!r}"
        if self.dilation_rate != (1, 1):
            s += f", dilation_rate={self.dilation_rate}"
        return s + self._options_repr()


class _Pooling2D(Layer):
    _op = None  # the name of the functional op
    _input_axes = "(batch, height, width, channels)"

    def __init__(self, pool_size=2, strides=None, padding="valid", input_shape=None):
        super().__init__(input_shape)
        name = type(self).__name__
        self.pool_size = _checks.pair(pool_size, "pool_size", name)
        self.strides = self.pool_size if strides is None else _checks.pair(strides, "strides", name)
        self.padding = _checks.padding(padding, name, explicit=False)

    def forward(self, x):
        x = self._prepare(x)
        return getattr(F, self._op)(x, _compact(self.pool_size), _compact(self.strides),
                                    self.padding)

    def extra_repr(self):
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"


class MaxPooling2D(_Pooling2D):
    """Maximum over pool_size windows of NHWC images (strides default to pool_size)."""
    _op = "max_pool2d"


class AveragePooling2D(_Pooling2D):
    """Mean over pool_size windows of NHWC images (strides default to pool_size)."""
    _op = "avg_pool2d"


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); (batch,) -> (batch, 1)."""

    def __init__(self, input_shape=None):
        super().__init__(input_shape)

    def _check_rank(self, shape):
        if len(shape) < 1:
            raise ValueError(f"Flatten: expected an input with a batch axis, got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class Dropout(Layer):
    """Zeroes each input element with probability ``rate`` while training and
    scales the rest by 1 / (1 - rate); the identity in eval()."""

    def __init__(self, rate, input_shape=None):
        super().__init__(input_shape)
        self.rate = _checks.number(rate, "rate", "Dropout", 0.0, 1.0, high_open=True)

    def forward(self, x):
        x = self._prepare(x)
        return F.dropout(x, self.rate, training=self.training)

    def extra_repr(self):
        return f"rate={self.rate}"


class Activation(Layer):
    """Applies an activation by name ("relu", "sigmoid", "tanh", "softmax",
    "linear") or a callable."""

    def __init__(self, activation, input_shape=None):
        super().__init__(input_shape)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x):
        return self._act(self._prepare(x))

    def extra_repr(self):
        return repr(_activation_name(self.activation))


class BatchNormalization(Layer):
    """Keras's BatchNormalization: normalises over every axis but ``axis``.

    Training: y = gamma * (x - mean) / sqrt(var + epsilon) + beta with the
    batch mean and biased variance, and moving_mean = moving_mean * momentum
    + mean * (1 - momentum), moving_variance likewise with the same biased
    variance (Keras 3 does both). eval(): the moving statistics instead.
    gamma (ones) and beta (zeros) are trainable; moving_mean (zeros) and
    moving_variance (ones) are buffers, saved in state_dict()."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        fn = "BatchNormalization"
        self.axis = _checks.integer(axis, "axis", fn)
        self.momentum = _checks.number(momentum, "momentum", fn, 0.0, 1.0)
        self.epsilon = _checks.number(epsilon, "epsilon", fn, 0.0, low_open=True)
        self.center = bool(center)
        self.scale = bool(scale)
        self.gamma = None
        self.beta = None
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) < 2 or not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"BatchNormalization: axis {self.axis} is out of range for an input "
                             f"of shape {shape} (at least 2-D: batch and features)")

    def build(self, input_shape):
        c = input_shape[self.axis]
        if self.scale:
            self._weight("gamma", (c,), "ones")
        if self.center:
            self._weight("beta", (c,), "zeros")
        self._weight("moving_mean", (c,), "zeros", trainable=False)
        self._weight("moving_variance", (c,), "ones", trainable=False)
        self._ndim = len(input_shape)

    def _check_built(self, shape):
        c = self.moving_mean.shape[0]
        if len(shape) != self._ndim or shape[self.axis] != c:
            want = ["d"] * self._ndim
            want[self.axis] = str(c)
            raise ValueError(f"BatchNormalization: expected a {self._ndim}-D input with {c} "
                             f"features on axis {self.axis}, ({', '.join(want)}), got shape "
                             f"{shape}")

    def forward(self, x):
        x = self._prepare(x)
        nd = x.ndim
        axis = self.axis % nd
        reduce = tuple(i for i in range(nd) if i != axis)
        bshape = tuple(x.shape[axis] if i == axis else 1 for i in range(nd))
        if self.training:
            mean = x.mean(axis=reduce, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=reduce, keepdims=True)
            y = centred / (var + self.epsilon).sqrt()
            if x.size == 0:  # no statistics in an empty batch: keep the moving ones
                return self._affine(y, bshape)
            with no_grad():
                m = self.momentum
                mm, mv = self.moving_mean, self.moving_variance
                mm.copy_(mm * m + mean.detach().reshape(mm.shape) * (1.0 - m))
                mv.copy_(mv * m + var.detach().reshape(mv.shape) * (1.0 - m))
        else:
            mean = self.moving_mean.reshape(bshape)
            y = (x - mean) / (self.moving_variance.reshape(bshape) + self.epsilon).sqrt()
        return self._affine(y, bshape)

    def _affine(self, y, bshape):
        if self.scale:
            y = y * self.gamma.reshape(bshape)
        if self.center:
            y = y + self.beta.reshape(bshape)
        return y

    def extra_repr(self):
        return f"axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}"


class Embedding(Layer):
    """Keras's Embedding: integer indices (any shape) in [0, input_dim) ->
    rows of ``embeddings`` (input_dim, output_dim), RandomUniform(-0.05,
    0.05) as Keras; the gradient of repeated indices adds up."""

    def __init__(self, input_dim, output_dim, input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        self.input_dim = _checks.integer(input_dim, "input_dim", "Embedding", low=1)
        self.output_dim = _checks.integer(output_dim, "output_dim", "Embedding", low=1)
        self.embeddings = None
        self._weight("embeddings", (self.input_dim, self.output_dim), "uniform")
        self.built = True

    def forward(self, x):
        d = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        if d.dtype.kind == "f" and np.array_equal(d, np.floor(d)):
            d = d.astype(np.int64)  # whole numbers in a float array, as Keras casts them
        if d.dtype.kind not in "iu":
            raise TypeError(f"Embedding: expected integer indices, got dtype {d.dtype}")
        if d.size and (d.min() < 0 or d.max() >= self.input_dim):
            bad = d[(d < 0) | (d >= self.input_dim)].flat[0]
            raise ValueError(f"Embedding: indices must be in [0, {self.input_dim}), got {bad} "
                             f"(input of shape {d.shape})")
        return self.embeddings[d.astype(np.int64)]

    def extra_repr(self):
        return f"input_dim={self.input_dim}, output_dim={self.output_dim}"

"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. The C++ side checks shapes, dtypes and layouts and names the
argument in its errors; here only what is not a float32 array is converted,
so the common call costs little more than the kernel."""
import numpy as np

from . import _C
from . import cuda as _cuda
from ._checks import as_float32, real

__all__ = ["avg_pool2d", "avg_pool2d_backward", "conv2d", "conv2d_backward", "gemm", "max_pool2d",
           "max_pool2d_backward"]


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """C = alpha * op(a) @ op(b) + beta * C in float32, op(x) = x.T when trans_x.

    a, b: 2-D arrays (other dtypes and layouts are converted). With ``c`` given
    (float32, C-contiguous, shape (M, N)) the result is written into it and it
    is returned; otherwise a new array is returned and C counts as zero. When
    beta is 0, C is never read.
    """
    try:  # float32 NumPy arrays go straight to the kernel
        return _C.gemm(a, b, trans_a, trans_b, alpha, beta, c)
    except TypeError:
        pass
    # anything else: device arrays, other dtypes, lists; or a real type error,
    # raised again below with the argument named
    if _cuda.is_device_array(a) or _cuda.is_device_array(b) or _cuda.is_device_array(c):
        return _cuda.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    a = as_float32(a, "a", "gemm")
    b = as_float32(b, "b", "gemm")
    alpha = real(alpha, "alpha", "gemm")
    beta = real(beta, "beta", "gemm")
    return _C.gemm(a, b, bool(trans_a), bool(trans_b), alpha, beta, c)


# ---------------------------------------------------------------- convolution and pooling
_MAX_WINDOW = 2**31 - 1  # window sizes, strides, dilations and pads (the kernels' limit)


def _pair(value, name, fn):
    """An int or a pair of ints >= 1 as (height, width)."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              for v in items):
        raise TypeError(f"{fn}: argument '{name}' must be an int or a pair of ints, got {value!r}")
    if min(items) < 1 or max(items) > _MAX_WINDOW:
        raise ValueError(f"{fn}: argument '{name}' must be in [1, {_MAX_WINDOW}], got {value!r}")
    return int(items[0]), int(items[1])


def _padding(padding, fn, explicit=True):
    """padding as ("valid" | "same" | "explicit", ph, pw)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode in ("valid", "same"):
            return mode, 0, 0
        raise ValueError(f"{fn}: argument 'padding' must be 'valid', 'same'"
                         f"{', an int or (ph, pw)' if explicit else ''}, got {padding!r}")
    if not explicit:
        raise ValueError(f"{fn}: argument 'padding' must be 'valid' or 'same', got {padding!r}")
    items = padding if isinstance(padding, (tuple, list)) else (padding, padding)
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              for v in items):
        raise TypeError(f"{fn}: argument 'padding' must be 'valid', 'same', an int or (ph, pw), "
                        f"got {padding!r}")
    if min(items) < 0 or max(items) > _MAX_WINDOW:
        raise ValueError(f"{fn}: argument 'padding' must be in [0, {_MAX_WINDOW}], got "
                         f"{padding!r}")
    return "explicit", int(items[0]), int(items[1])


def _image(x, name, fn):
    x = as_float32(x, name, fn)
    if x.ndim != 4:
        raise ValueError(f"{fn}: argument '{name}' must be 4-D (N, H, W, C), got shape {x.shape}")
    return np.ascontiguousarray(x)


def _conv_window(stride, padding, dilation, fn):
    """(sh, sw, mode, ph, pw, dh, dw) as the bindings take them."""
    return _pair(stride, "stride", fn) + _padding(padding, fn) + _pair(dilation, "dilation", fn)


def _conv_args(x, w, stride, padding, dilation, fn):
    x = _image(x, "x", fn)
    w = np.ascontiguousarray(as_float32(w, "w", fn))
    return (x, w) + _conv_window(stride, padding, dilation, fn)


def _check_activation(activation, fn):
    if activation not in (None, "relu", "linear"):
        raise ValueError(f"{fn}: argument 'activation' must be None or 'relu', got {activation!r}")
    return activation == "relu"


def conv2d(x, w, b=None, stride=1, padding="valid", dilation=1, activation=None):
    """y = conv(x, w) + b over NHWC images with an HWIO kernel (cross-correlation,
    as Keras and PyTorch). padding: "valid", "same" (Keras's rule) or an int /
    (ph, pw); stride, dilation: an int or (sh, sw). activation "relu" fuses a ReLU."""
    relu = _check_activation(activation, "conv2d")
    args = _conv_args(x, w, stride, padding, dilation, "conv2d")
    if b is not None:
        b = np.ascontiguousarray(as_float32(b, "b", "conv2d"))
    x, w, sh, sw, mode, ph, pw, dh, dw = args
    return _C.conv2d(x, w, b, sh, sw, mode, ph, pw, dh, dw, relu)


def conv2d_backward(x, w, dy, stride=1, padding="valid", dilation=1):
    """(dx, dw, db) of conv2d (without activation) for the output gradient dy."""
    x, w, sh, sw, mode, ph, pw, dh, dw = _conv_args(x, w, stride, padding, dilation,
                                                    "conv2d_backward")
    dy = np.ascontiguousarray(as_float32(dy, "dy", "conv2d_backward"))
    return _C.conv2d_backward(x, w, dy, sh, sw, mode, ph, pw, dh, dw, True, True, True)


def _pool_window(pool_size, strides, padding, fn):
    """(kh, kw, sh, sw, mode) as the bindings take them."""
    kh, kw = _pair(pool_size, "pool_size", fn)
    sh, sw = (kh, kw) if strides is None else _pair(strides, "strides", fn)
    return kh, kw, sh, sw, _padding(padding, fn, explicit=False)[0]


def _pool_args(x, pool_size, strides, padding, fn):
    return (_image(x, "x", fn),) + _pool_window(pool_size, strides, padding, fn)


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """The maximum over each pool_size window of NHWC images (strides default
    to pool_size; padding "valid" or "same", padded cells never win)."""
    return _C.max_pool2d(*_pool_args(x, pool_size, strides, padding, "max_pool2d"))


def max_pool2d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    """dx of max_pool2d: each window's gradient to its first maximum."""
    x, kh, kw, sh, sw, mode = _pool_args(x, pool_size, strides, padding, "max_pool2d_backward")
    dy = np.ascontiguousarray(as_float32(dy, "dy", "max_pool2d_backward"))
    return _C.max_pool2d_backward(x, dy, kh, kw, sh, sw, mode)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """The mean over each window of NHWC images, counting only the real
    (unpadded) cells, as Keras."""
    return _C.avg_pool2d(*_pool_args(x, pool_size, strides, padding, "avg_pool2d"))


def avg_pool2d_backward(x, dy, pool_size=2, strides=None, padding="valid"):
    """dx of avg_pool2d (x gives the input's shape)."""
    x, kh, kw, sh, sw, mode = _pool_args(x, pool_size, strides, padding, "avg_pool2d_backward")
    dy = np.ascontiguousarray(as_float32(dy, "dy", "avg_pool2d_backward"))
    return _C.avg_pool2d_backward(x, dy, kh, kw, sh, sw, mode)

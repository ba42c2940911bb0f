"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. The C++ side checks shapes, dtypes and layouts and names the
argument in its errors; here only what is not a float32 array is converted,
so the common call costs little more than the kernel."""
import numpy as np

from . import _C, _backend
from . import cuda as _cuda
from ._checks import (as_float32, conv_algorithm, conv_window, fused_relu, pool_window, real, rnn_cell,
                      rnn_shapes, shape_str)

__all__ = ["avg_pool2d", "avg_pool2d_backward", "conv2d", "conv2d_backward", "gemm", "gru",
           "gru_backward", "gru_cell", "gru_cell_backward", "lstm", "lstm_backward", "lstm_cell",
           "lstm_cell_backward", "max_pool2d", "max_pool2d_backward"]


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
def _image(x, name, fn):
    x = as_float32(x, name, fn)
    if x.ndim != 4:
        raise ValueError(f"{fn}: argument '{name}' must be 4-D (N, H, W, C), got shape {x.shape}")
    return np.ascontiguousarray(x)


def _conv_args(x, w, stride, padding, dilation, fn):
    x = _image(x, "x", fn)
    w = np.ascontiguousarray(as_float32(w, "w", fn))
    return (x, w) + conv_window(stride, padding, dilation, fn)


def conv2d(x, w, b=None, stride=1, padding="valid", dilation=1, activation=None,
           algorithm="auto"):
    """y = conv(x, w) + b over NHWC images with an HWIO kernel (cross-correlation,
    as Keras and PyTorch). padding: "valid", "same" (Keras's rule) or an int /
    (ph, pw); stride, dilation: an int or (sh, sw). activation "relu" fuses a ReLU.
    algorithm: "auto" (per shape and pass; the environment variable
    FASTNN_CONV_ALGORITHM replaces it process-wide), "direct", or "winograd"
    (3x3 windows, stride 1, dilation 1 only; "winograd2" / "winograd4" force
    F(2x2,3x3) / F(4x4,3x3)). Winograd's float32 error grows with the tile:
    see tests/test_winograd.py for the bound."""
    relu = fused_relu(activation, "conv2d")
    algorithm = conv_algorithm(algorithm, "conv2d")
    args = _conv_args(x, w, stride, padding, dilation, "conv2d")
    if b is not None:
        b = np.ascontiguousarray(as_float32(b, "b", "conv2d"))
    x, w, sh, sw, mode, ph, pw, dh, dw = args
    return _C.conv2d(x, w, b, sh, sw, mode, ph, pw, dh, dw, relu, algorithm)


def conv2d_backward(x, w, dy, stride=1, padding="valid", dilation=1, algorithm="auto"):
    """(dx, dw, db) of conv2d (without activation) for the output gradient dy;
    algorithm as for conv2d."""
    algorithm = conv_algorithm(algorithm, "conv2d_backward")
    x, w, sh, sw, mode, ph, pw, dh, dw = _conv_args(x, w, stride, padding, dilation,
                                                    "conv2d_backward")
    dy = np.ascontiguousarray(as_float32(dy, "dy", "conv2d_backward"))
    return _C.conv2d_backward(x, w, dy, sh, sw, mode, ph, pw, dh, dw, True, True, True,
                              algorithm)


def _pool_args(x, pool_size, strides, padding, fn):
    return (_image(x, "x", fn),) + pool_window(pool_size, strides, padding, fn)


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


# ---------------------------------------------------------------- LSTM and GRU
def _rnn_arrays(fn, arrays, names):
    """Float32 C-contiguous host arrays (None stays None), or the
    DeviceArrays as they are when any is on the GPU."""
    if any(_cuda.is_device_array(a) for a in arrays):
        for a, name in zip(arrays, names):
            if a is not None and not _cuda.is_device_array(a):
                raise TypeError(f"{fn}: argument '{name}' is on the host but others are on the "
                                "GPU: move it with fastnn.cuda.to_device")
        return list(arrays)
    return [None if a is None else np.ascontiguousarray(as_float32(a, name, fn))
            for a, name in zip(arrays, names)]


def _sequence(cell, fn, x, h0, c0, w_x, w_h, b, grads=None, need_c=False):
    """Forward over x (B, T, I); with grads = (dout, dh, dc) also the
    backward. Returns the forward's (out, h, c) or the backward's six."""
    names = ("x", "h0", "c0", "w_x", "w_h", "b")
    x, h0, c0, w_x, w_h, b = _rnn_arrays(fn, (x, h0, c0, w_x, w_h, b), names)
    rnn_shapes(cell, fn, x, h0, c0, w_x, w_h, b)
    xp = _backend.of(x)
    out, h, c, gates, state = xp.rnn_forward(cell, x, h0, c0, w_x, w_h, b, grads is not None)
    if grads is None:
        return out, h, c
    dout, dh, dc = _rnn_arrays(fn, grads, ("dout", "dh", "dc"))
    B, T, _ = x.shape
    H = w_h.shape[0]
    for name, g, want in (("dout", dout, (B, T, H)), ("dh", dh, (B, H)), ("dc", dc, (B, H))):
        if g is not None and tuple(g.shape) != want:
            raise ValueError(f"{fn}: argument '{name}' must have shape {want}, got "
                             f"{shape_str(g.shape)}")
    return xp.rnn_backward(cell, x, h0, c0, w_x, w_h, out, gates, state, dout, dh, dc,
                           need_dx=True, need_dh0=True, need_dc0=need_c, need_dw_x=True,
                           need_dw_h=True, need_db=True)


def _step_input(x, fn):
    """x (B, I) as a sequence of one step, (B, 1, I)."""
    arr = x if _cuda.is_device_array(x) else as_float32(x, "x", fn)
    if len(arr.shape) != 2:
        raise ValueError(f"{fn}: argument 'x' must be 2-D (batch, features), got shape "
                         f"{shape_str(arr.shape)}")
    if _cuda.is_device_array(arr):
        return _cuda._C_cuda.reshape(arr, (arr.shape[0], 1, arr.shape[1]))
    return arr.reshape(arr.shape[0], 1, arr.shape[1])


def _step_grad(dx):
    """dx (B, 1, I) of a one-step sequence as (B, I)."""
    shape = (dx.shape[0], dx.shape[2])
    return _cuda._C_cuda.reshape(dx, shape) if _cuda.is_device_array(dx) else dx.reshape(shape)


def lstm(x, h0, c0, w_x, w_h, b):
    """An LSTM over the sequence x (B, T, I) from the states h0, c0 (B, H)
    (None: zeros): (out (B, T, H), h_T, c_T). w_x (I, 4H), w_h (H, 4H), b (4H,),
    gates [i, f, g, o] (docs/api.md)."""
    return _sequence("lstm", "lstm", x, h0, c0, w_x, w_h, b)


def lstm_backward(x, h0, c0, w_x, w_h, b, dout, dh=None, dc=None):
    """(dx, dh0, dc0, dw_x, dw_h, db) of lstm for the gradients dout of out
    and dh, dc of the final states (None: zero). Runs the forward again."""
    return _sequence("lstm", "lstm_backward", x, h0, c0, w_x, w_h, b, (dout, dh, dc), True)


def gru(x, h0, w_x, w_h, b, reset_after=False):
    """A GRU over x (B, T, I) from h0 (B, H) (None: zeros): (out (B, T, H), h_T).
    w_x (I, 3H), w_h (H, 3H), gates [z, r, h~]; b (3H,), or (2, 3H) with
    reset_after (the reset gate applied after the recurrent product)."""
    out, h, _ = _sequence(rnn_cell("gru", reset_after), "gru", x, h0, None, w_x, w_h, b)
    return out, h


def gru_backward(x, h0, w_x, w_h, b, dout, dh=None, reset_after=False):
    """(dx, dh0, dw_x, dw_h, db) of gru. Runs the forward again."""
    dx, dh0, _, dw_x, dw_h, db = _sequence(rnn_cell("gru", reset_after), "gru_backward", x, h0,
                                           None, w_x, w_h, b, (dout, dh, None))
    return dx, dh0, dw_x, dw_h, db


def lstm_cell(x, h, c, w_x, w_h, b):
    """One LSTM step: x (B, I), h, c (B, H) -> (h', c'). The recurrent product
    of all gates is one GEMM, followed by one fused pass over the gates."""
    _, h1, c1 = _sequence("lstm", "lstm_cell", _step_input(x, "lstm_cell"), h, c, w_x, w_h, b)
    return h1, c1


def lstm_cell_backward(x, h, c, w_x, w_h, b, dh, dc=None):
    """(dx, dh, dc, dw_x, dw_h, db) of lstm_cell for the gradients dh, dc of
    h' and c' (dc None: zero)."""
    dx, dh0, dc0, dw_x, dw_h, db = _sequence("lstm", "lstm_cell_backward",
                                             _step_input(x, "lstm_cell_backward"), h, c, w_x,
                                             w_h, b, (None, dh, dc), True)
    return _step_grad(dx), dh0, dc0, dw_x, dw_h, db


def gru_cell(x, h, w_x, w_h, b, reset_after=False):
    """One GRU step: x (B, I), h (B, H) -> h'."""
    _, h1, _ = _sequence(rnn_cell("gru", reset_after), "gru_cell", _step_input(x, "gru_cell"), h,
                         None, w_x, w_h, b)
    return h1


def gru_cell_backward(x, h, w_x, w_h, b, dh, reset_after=False):
    """(dx, dh, dw_x, dw_h, db) of gru_cell for the gradient dh of h'."""
    dx, dh0, _, dw_x, dw_h, db = _sequence(rnn_cell("gru", reset_after), "gru_cell_backward",
                                           _step_input(x, "gru_cell_backward"), h, None, w_x,
                                           w_h, b, (None, dh, None))
    return _step_grad(dx), dh0, dw_x, dw_h, db

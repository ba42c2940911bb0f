"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. The C++ side checks shapes, dtypes and layouts and names the
argument in its errors; here only what is not a float32 array is converted,
so the common call costs little more than the kernel."""
import numpy as np

from . import _C
from . import cuda as _cuda
from ._checks import as_float32, real

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


# ---------------------------------------------------------------- LSTM and GRU
_RNN_GATES = {"lstm": 4, "gru": 3, "gru_reset_after": 3}


def _shape_str(shape):
    return str(tuple(int(s) for s in shape))


def _rnn_module(arrays):
    """_C, or _C_cuda when the arrays are DeviceArrays."""
    return _cuda._C_cuda if any(_cuda.is_device_array(a) for a in arrays) else _C


def _rnn_check(cell, fn, x, h0, c0, w_x, w_h, b):
    """ValueError naming the argument, the shape expected and the shape
    received, unless the arrays (anything with .shape) fit one another as
    the sequence kernels take them; returns (B, T, I, H)."""
    gates = _RNN_GATES[cell]
    xs, whs, wxs, bs = (tuple(a.shape) for a in (x, w_h, w_x, b))
    if len(xs) != 3:
        raise ValueError(f"{fn}: argument 'x' must be 3-D (batch, time, features), got shape "
                         f"{_shape_str(xs)}")
    B, T, I = xs
    if len(whs) != 2 or whs[1] != gates * whs[0]:
        raise ValueError(f"{fn}: argument 'w_h' (the recurrent kernel) must have shape "
                         f"(units, {gates} * units), got {_shape_str(whs)}")
    H = whs[0]
    if len(wxs) != 2 or wxs[0] != I:
        raise ValueError(f"{fn}: 'x' of shape {_shape_str(xs)} has {I} features but the kernel "
                         f"'w_x' of shape {_shape_str(wxs)} takes "
                         f"{wxs[0] if len(wxs) == 2 else 'a 2-D input'}")
    if wxs[1] != gates * H:
        raise ValueError(f"{fn}: argument 'w_x' must have shape ({I}, {gates * H}) to match "
                         f"'w_h' of shape {_shape_str(whs)}, got {_shape_str(wxs)}")
    want_b = (2, gates * H) if cell == "gru_reset_after" else (gates * H,)
    if bs != want_b:
        extra = " ([input bias, recurrent bias] for reset_after)" if len(want_b) == 2 else ""
        raise ValueError(f"{fn}: argument 'b' must have shape {_shape_str(want_b)}{extra}, got "
                         f"{_shape_str(bs)}")
    for name, s in (("h0", h0), ("c0", c0)):
        if s is not None and tuple(s.shape) != (B, H):
            raise ValueError(f"{fn}: argument '{name}' must have shape ({B}, {H}) (batch, "
                             f"units) to match 'x' of shape {_shape_str(xs)} and {H} units, got "
                             f"{_shape_str(s.shape)}")
    return B, T, I, H


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
    _rnn_check(cell, fn, x, h0, c0, w_x, w_h, b)
    module = _rnn_module((x,))
    out, h, c, gates, state = module.rnn_forward(cell, x, h0, c0, w_x, w_h, b, grads is not None)
    if grads is None:
        return out, h, c
    dout, dh, dc = _rnn_arrays(fn, grads, ("dout", "dh", "dc"))
    B, T, _ = x.shape
    H = w_h.shape[0]
    for name, g, want in (("dout", dout, (B, T, H)), ("dh", dh, (B, H)), ("dc", dc, (B, H))):
        if g is not None and tuple(g.shape) != want:
            raise ValueError(f"{fn}: argument '{name}' must have shape {want}, got "
                             f"{_shape_str(g.shape)}")
    return module.rnn_backward(cell, x, h0, c0, w_x, w_h, out, gates, state, dout, dh, dc,
                               True, True, need_c, True, True, True)


def _gru_cell_name(reset_after):
    return "gru_reset_after" if reset_after else "gru"


def _step_input(x, fn):
    """x (B, I) as a sequence of one step, (B, 1, I)."""
    arr = x if _cuda.is_device_array(x) else as_float32(x, "x", fn)
    if len(arr.shape) != 2:
        raise ValueError(f"{fn}: argument 'x' must be 2-D (batch, features), got shape "
                         f"{_shape_str(arr.shape)}")
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
    out, h, _ = _sequence(_gru_cell_name(reset_after), "gru", x, h0, None, w_x, w_h, b)
    return out, h


def gru_backward(x, h0, w_x, w_h, b, dout, dh=None, reset_after=False):
    """(dx, dh0, dw_x, dw_h, db) of gru. Runs the forward again."""
    dx, dh0, _, dw_x, dw_h, db = _sequence(_gru_cell_name(reset_after), "gru_backward", x, h0,
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
    _, h1, _ = _sequence(_gru_cell_name(reset_after), "gru_cell", _step_input(x, "gru_cell"), h,
                         None, w_x, w_h, b)
    return h1


def gru_cell_backward(x, h, w_x, w_h, b, dh, reset_after=False):
    """(dx, dh, dw_x, dw_h, db) of gru_cell for the gradient dh of h'."""
    dx, dh0, _, dw_x, dw_h, db = _sequence(_gru_cell_name(reset_after), "gru_cell_backward",
                                           _step_input(x, "gru_cell_backward"), h, None, w_x,
                                           w_h, b, (None, dh, None))
    return _step_grad(dx), dh0, dw_x, dw_h, db

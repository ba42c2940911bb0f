"""Validation at the public boundary, one rule for every entry point: a
TypeError when an argument has the wrong type, a ValueError when it has the
right type but a bad value or shape. Errors name the function and the
argument. The bindings below check only what memory safety needs."""
import math
import numbers

import numpy as np

# window sizes, strides, dilations and pads: the kernels take them as int32
MAX_WINDOW = 2**31 - 1


# ---------------------------------------------------------------- arrays
def as_float32(x, name, fn):
    """x as a float32 ndarray, or TypeError naming the argument."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:  # ragged lists and the like
            raise TypeError(f"{fn}: argument '{name}' must be an array of numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(
            f"{fn}: argument '{name}' must be an array of numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, order="C") if arr.dtype != np.float32 else arr


def shape_str(shape):
    return str(tuple(int(s) for s in shape))


# ---------------------------------------------------------------- numbers
def real(x, name, fn):
    """x as a Python float (NaN and infinities pass), or TypeError."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{fn}: argument '{name}' must be a real number, got {type(x).__name__}")
    return float(x)


def number(x, name, fn, low=-math.inf, high=math.inf, *, low_open=False, high_open=False,
           finite=False):
    """x as a float in the interval from low to high (ends included unless
    open), and finite if asked: TypeError for a non-number, ValueError for
    NaN or a value outside."""
    if type(x) is not float and (isinstance(x, (bool, np.bool_))
                                 or not isinstance(x, numbers.Real)):
        raise TypeError(f"{fn}: argument '{name}' must be a number, got {type(x).__name__}")
    v = float(x)
    inside = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not inside or (finite and not math.isfinite(v)):
        want = _interval(low, high, low_open, high_open)
        if finite:
            want = "a finite number" + ("" if want == "a number" else " " + want)
        raise ValueError(f"{fn}: argument '{name}' must be {want}, got {x!r}")
    return v


def _interval(low, high, low_open, high_open):
    if high == math.inf:
        return ("> " if low_open else ">= ") + f"{low:g}" if low != -math.inf else "a number"
    if low == -math.inf:
        return ("< " if high_open else "<= ") + f"{high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def integer(x, name, fn, low=None):
    """x as an int (not a bool) >= low: TypeError for a non-int, ValueError below."""
    if type(x) is not int and (isinstance(x, (bool, np.bool_))
                               or not isinstance(x, numbers.Integral)):
        raise TypeError(f"{fn}: argument '{name}' must be an int, got {type(x).__name__}")
    if low is not None and x < low:
        raise ValueError(f"{fn}: argument '{name}' must be >= {low}, got {x}")
    return int(x)


def flag(x, name, fn):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{fn}: argument '{name}' must be a bool, got {type(x).__name__}")
    return bool(x)


def lookup(table, name, fn, what):
    """table's entry for a name (any case): the registries' ``get``; a
    ValueError listing the valid names for an unknown one."""
    entry = table.get(name.lower())
    if entry is None:
        raise ValueError(f"{fn}: unknown {what} {name!r}; valid names are {sorted(table)}")
    return entry


# ---------------------------------------------------------------- windows (conv and pooling)
def pair(value, name, fn, low=1):
    """An int or a pair of ints in [low, MAX_WINDOW] as (height, width)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if any(type(v) is not int and (isinstance(v, (bool, np.bool_))
                                   or not isinstance(v, numbers.Integral)) for v in items):
        raise TypeError(f"{fn}: argument '{name}' must be an int or a pair of ints, got {value!r}")
    if len(items) != 2 or min(items) < low or max(items) > MAX_WINDOW:
        raise ValueError(f"{fn}: argument '{name}' must be an int or a pair of ints in "
                         f"[{low}, {MAX_WINDOW}], got {value!r}")
    return int(items[0]), int(items[1])


def padding(value, fn, explicit=True):
    """"valid" or "same" (any case), or with ``explicit`` an int or (ph, pw) >= 0
    as a pair."""
    if isinstance(value, str):
        mode = value.lower()
        if mode in ("valid", "same"):
            return mode
    elif explicit and not isinstance(value, (bool, np.bool_)) and (
            isinstance(value, numbers.Integral) or isinstance(value, (tuple, list))):
        return pair(value, "padding", fn, low=0)
    valid = "'valid', 'same', an int or (ph, pw)" if explicit else "'valid' or 'same'"
    kind = ValueError if isinstance(value, str) or explicit is False else TypeError
    raise kind(f"{fn}: argument 'padding' must be {valid}, got {value!r}")


def conv_window(stride, pad, dilation, fn):
    """(sh, sw, mode, ph, pw, dh, dw) as the conv bindings take them."""
    p = padding(pad, fn)
    mode, ph, pw = ("explicit",) + p if isinstance(p, tuple) else (p, 0, 0)
    return pair(stride, "stride", fn) + (mode, ph, pw) + pair(dilation, "dilation", fn)


def conv_output_size(size, kernel, window):
    """(OH, OW) of a convolution of an image of `size` (H, W) with a kernel
    of `kernel` (KH, KW) under `window` (conv_window's tuple)."""
    sh, sw, mode, ph, pw, dh, dw = window
    out = []
    for n, k, s, p, d in ((size[0], kernel[0], sh, ph, dh), (size[1], kernel[1], sw, pw, dw)):
        if mode == "same":
            out.append(-(-n // s))
        else:
            pad = 2 * p if mode == "explicit" else 0
            out.append(max((n + pad - d * (k - 1) - 1) // s + 1, 0))
    return tuple(out)


def pool_window(pool_size, strides, pad, fn):
    """(kh, kw, sh, sw, mode) as the pooling bindings take them."""
    kh, kw = pair(pool_size, "pool_size", fn)
    sh, sw = (kh, kw) if strides is None else pair(strides, "strides", fn)
    return kh, kw, sh, sw, padding(pad, fn, explicit=False)


def fused_relu(activation, fn):
    """Whether a kernel's fused activation is a ReLU (None or "linear": none)."""
    if activation not in (None, "relu", "linear"):
        raise ValueError(f"{fn}: argument 'activation' must be None or 'relu', got {activation!r}")
    return activation == "relu"


_CONV_ALGORITHMS = ("auto", "direct", "winograd", "winograd2", "winograd4")


def conv_algorithm(algorithm, fn):
    """A convolution algorithm's name: "auto", "direct", "winograd" (or
    "winograd2" / "winograd4", forcing the tile)."""
    if not isinstance(algorithm, str):
        raise TypeError(f"{fn}: argument 'algorithm' must be a str, got {type(algorithm).__name__}")
    if algorithm not in _CONV_ALGORITHMS:
        raise ValueError(f"{fn}: argument 'algorithm' must be one of "
                         f"{', '.join(map(repr, _CONV_ALGORITHMS))}, got {algorithm!r}")
    return algorithm


# ---------------------------------------------------------------- recurrent kernels
_RNN_GATES = {"lstm": 4, "gru": 3, "gru_reset_after": 3}


def rnn_cell(kind, reset_after=False):
    """The kernels' cell name: "lstm", "gru" or "gru_reset_after"."""
    return "gru_reset_after" if kind == "gru" and reset_after else kind


def rnn_shapes(cell, fn, x, h0, c0, w_x, w_h, b):
    """(B, T, I, H) when the arrays (anything with .shape) fit one another as
    the sequence kernels take them; otherwise a ValueError naming the
    argument, the shape expected and the shape received."""
    gates = _RNN_GATES[cell]
    xs, whs, wxs, bs = (tuple(a.shape) for a in (x, w_h, w_x, b))
    if len(xs) != 3:
        raise ValueError(f"{fn}: argument 'x' must be 3-D (batch, time, features), got shape "
                         f"{shape_str(xs)}")
    B, T, I = xs
    if len(whs) != 2 or whs[1] != gates * whs[0]:
        raise ValueError(f"{fn}: argument 'w_h' (the recurrent kernel) must have shape "
                         f"(units, {gates} * units), got {shape_str(whs)}")
    H = whs[0]
    if len(wxs) != 2 or wxs[0] != I:
        raise ValueError(f"{fn}: 'x' of shape {shape_str(xs)} has {I} features but the kernel "
                         f"'w_x' of shape {shape_str(wxs)} takes "
                         f"{wxs[0] if len(wxs) == 2 else 'a 2-D input'}")
    if wxs[1] != gates * H:
        raise ValueError(f"{fn}: argument 'w_x' must have shape ({I}, {gates * H}) to match "
                         f"'w_h' of shape {shape_str(whs)}, got {shape_str(wxs)}")
    want_b = (2, gates * H) if cell == "gru_reset_after" else (gates * H,)
    if bs != want_b:
        extra = " ([input bias, recurrent bias] for reset_after)" if len(want_b) == 2 else ""
        raise ValueError(f"{fn}: argument 'b' must have shape {shape_str(want_b)}{extra}, got "
                         f"{shape_str(bs)}")
    for name, s in (("h0", h0), ("c0", c0)):
        if s is not None and tuple(s.shape) != (B, H):
            raise ValueError(f"{fn}: argument '{name}' must have shape ({B}, {H}) (batch, "
                             f"units) to match 'x' of shape {shape_str(xs)} and {H} units, got "
                             f"{shape_str(s.shape)}")
    return B, T, I, H

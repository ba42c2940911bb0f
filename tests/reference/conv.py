"""References for 2-D convolution and pooling over NHWC images, in float64.

Layouts are Keras's: x (N, H, W, C), conv kernel w (KH, KW, C, F) (HWIO),
bias b (F,), output (N, OH, OW, F). Convolution is cross-correlation, as in
Keras and PyTorch. Padding is "valid" (none), "same" (Keras's rule, see
same_padding) or explicit symmetric: an int or (ph, pw). Stride and
dilation are an int or (sh, sw).

As in reference/ops.py, each op has ``<op>_forward(inputs..., options) -> out``
and ``<op>_backward(dout, inputs..., options) -> grads``; a backward
recomputes what it needs from the inputs. The loops run over the kernel
taps (a handful) with NumPy slicing doing the rest: written to be obviously
right, not fast. Nothing here imports fastnn.
"""
import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


# ---------------------------------------------------------------- window shapes
def same_padding(size, k, stride, dilation=1):
    """Keras/TensorFlow "same" along one axis: (pad_before, pad_after, out).

    out = ceil(size / stride); the window reaches (k - 1) * dilation + 1
    cells; the padding needed is split with the extra cell after."""
    out = -(-size // stride)
    span = (k - 1) * dilation + 1
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2, out


def axis_padding(size, k, stride, dilation, padding, axis):
    """(pad_before, pad_after, out) along one axis (axis 0: height, 1: width)
    for padding "valid", "same", an int or (ph, pw)."""
    span = (k - 1) * dilation + 1
    if isinstance(padding, str):
        if padding == "same":
            return same_padding(size, k, stride, dilation)
        assert padding == "valid", padding
        before = 0
    else:
        before = _pair(padding)[axis]
    out = (size + 2 * before - span) // stride + 1
    assert out >= 1 or size == 0, "the window does not fit the (padded) input"
    return before, before, out


def _windows(shape, kernel, stride, padding, dilation):
    """The geometry of a window op over x of ``shape`` (N, H, W, C): the
    padding ((top, bottom), (left, right)), the output size (OH, OW), and
    taps: for each kernel tap (kh, kw) in row-major order, the pair of
    slices of the PADDED input that the tap sees over all output pixels."""
    (kh_, kw_), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    top, bottom, oh = axis_padding(shape[1], kh_, sh, dh, padding, 0)
    left, right, ow = axis_padding(shape[2], kw_, sw, dw, padding, 1)
    taps = []
    for kh in range(kh_):
        for kw in range(kw_):
            rows = slice(kh * dh, kh * dh + (oh - 1) * sh + 1, sh)
            cols = slice(kw * dw, kw * dw + (ow - 1) * sw + 1, sw)
            taps.append(((kh, kw), (slice(None), rows, cols, slice(None))))
    return ((top, bottom), (left, right)), (oh, ow), taps


def _pad(x, pads, value=0.0):
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def _crop(xp, pads, shape):
    (top, _), (left, _) = pads
    return xp[:, top:top + shape[1], left:left + shape[2], :]


# ---------------------------------------------------------------- convolution
def conv2d_forward(x, w, b=None, stride=1, padding="valid", dilation=1):
    """y[n, oh, ow, f] = b[f] + sum over (kh, kw, c) of
    x_padded[n, oh*sh + kh*dh, ow*sw + kw*dw, c] * w[kh, kw, c, f]."""
    x, w = _f64(x), _f64(w)
    pads, (oh, ow), taps = _windows(x.shape, w.shape[:2], stride, padding, dilation)
    xp = _pad(x, pads)
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for (kh, kw), sl in taps:
        out += xp[sl] @ w[kh, kw]
    return out if b is None else out + _f64(b)


def conv2d_backward(dout, x, w, stride=1, padding="valid", dilation=1):
    """(dx, dw, db) of conv2d_forward for the output gradient dout: each tap
    sends dout @ w[tap].T back to the input cells it saw, and collects
    x[cells].T @ dout into its weights; db sums dout over the pixels."""
    dout, x, w = _f64(dout), _f64(x), _f64(w)
    pads, _, taps = _windows(x.shape, w.shape[:2], stride, padding, dilation)
    xp = _pad(x, pads)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for (kh, kw), sl in taps:
        dxp[sl] += dout @ w[kh, kw].T
        dw[kh, kw] = np.einsum("nhwc,nhwf->cf", xp[sl], dout)
    return _crop(dxp, pads, x.shape), dw, dout.sum(axis=(0, 1, 2))


# ---------------------------------------------------------------- pooling
def _pool_windows(x, pool_size, strides, padding):
    """Padded x, a mask of its real cells, the padding and the taps."""
    strides = pool_size if strides is None else strides
    assert padding in ("valid", "same"), padding
    pads, _, taps = _windows(x.shape, pool_size, strides, padding, 1)
    real = _pad(np.ones(x.shape, dtype=bool), pads, False)
    return _pad(x, pads), real, pads, taps


def _first_max(x, pool_size, strides, padding):
    """For each window: the index (in row-major tap order) of its first
    maximum among the real cells, and the maximum; padded cells never win."""
    xp, real, pads, taps = _pool_windows(x, pool_size, strides, padding)
    best = winner = None
    for t, (_, sl) in enumerate(taps):
        v, ok = xp[sl], real[sl]
        if best is None:
            best, winner = np.full(v.shape, -np.inf), np.full(v.shape, -1)
        take = ok & ((winner < 0) | (v > best))  # strictly greater: the first one keeps it
        best = np.where(take, v, best)
        winner = np.where(take, t, winner)
    return winner, best


def max_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """The maximum of the real cells of each window."""
    return _first_max(_f64(x), pool_size, strides, padding)[1]


def max_pool2d_backward(dout, x, pool_size=2, strides=None, padding="valid"):
    """(dx,): each window's gradient goes to its first maximum (row-major
    order within the window); overlapping windows add up."""
    x, dout = _f64(x), _f64(dout)
    winner, _ = _first_max(x, pool_size, strides, padding)
    xp, _, pads, taps = _pool_windows(x, pool_size, strides, padding)
    dxp = np.zeros_like(xp)
    for t, (_, sl) in enumerate(taps):
        dxp[sl] += np.where(winner == t, dout, 0.0)
    return (_crop(dxp, pads, x.shape),)


def _real_counts(x, pool_size, strides, padding):
    _, real, _, taps = _pool_windows(x, pool_size, strides, padding)
    return sum(real[sl].astype(np.float64) for _, sl in taps)


def avg_pool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """The mean of each window over its REAL cells only (Keras): padded
    cells count neither in the sum nor in the divisor."""
    x = _f64(x)
    xp, _, _, taps = _pool_windows(x, pool_size, strides, padding)
    total = sum(xp[sl] for _, sl in taps)  # padded cells hold 0
    return total / _real_counts(x, pool_size, strides, padding)


def avg_pool2d_backward(dout, x, pool_size=2, strides=None, padding="valid"):
    """(dx,): each window spreads dout / (its number of real cells) over
    those cells; overlapping windows add up."""
    x, dout = _f64(x), _f64(dout)
    share = dout / _real_counts(x, pool_size, strides, padding)
    xp, _, pads, taps = _pool_windows(x, pool_size, strides, padding)
    dxp = np.zeros_like(xp)
    for _, sl in taps:
        dxp[sl] += share  # what lands on padding is cropped away
    return (_crop(dxp, pads, x.shape),)

"""``CPU``: the array operations on NumPy arrays, float32 on the C++ kernels
of ``_C``, other dtypes (float64 for precise gradient checks) in NumPy."""
import math

import numpy as np

from .. import _C

_f32 = np.dtype(np.float32)
_ndarray = np.ndarray


def _contig(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _sigmoid_ref(d):
    e = np.exp(-np.abs(d))  # never overflows; exact relative precision on both sides
    return np.where(d >= 0, 1 / (1 + e), e / (1 + e))


def _softmax_ref(m):
    if m.shape[-1] == 0:
        return m.copy()
    e = np.exp(m - m.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax_ref(m):
    if m.shape[-1] == 0:
        return m.copy()
    s = m - m.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


_UNARY_REF = {
    "relu": (lambda d: np.maximum(d, 0), lambda y, g: g * (y > 0)),
    "sigmoid": (lambda d: _sigmoid_ref(d), lambda y, g: g * y * (1 - y)),
    "tanh": (np.tanh, lambda y, g: g * (1 - y * y)),
}
_ROWS_REF = {
    "softmax": (_softmax_ref, lambda y, g: y * (g - (g * y).sum(axis=-1, keepdims=True))),
    "log_softmax": (_log_softmax_ref, lambda y, g: g - np.exp(y) * g.sum(axis=-1, keepdims=True)),
}
_KERNELS = {name: (getattr(_C, name), getattr(_C, name + "_backward"))
            for name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax")}


class CPU:
    """NumPy arrays."""
    name = "cpu"
    add = np.add
    sub = np.subtract
    mul = np.multiply
    div = np.true_divide
    pow = np.power
    neg = np.negative
    exp = np.exp
    log = np.log
    sqrt = np.sqrt
    abs = np.absolute
    sign = np.sign

    @staticmethod
    def eq(a, b):
        """1 where a == b, else 0, in a's dtype."""
        return np.equal(a, b).astype(a.dtype)

    @staticmethod
    def sum(a, axes, keepdims):
        return np.asarray(np.sum(a, axis=axes, keepdims=keepdims))

    @staticmethod
    def max(a, axes, keepdims):
        return np.asarray(np.max(a, axis=axes, keepdims=keepdims))

    @staticmethod
    def broadcast_to(a, shape):
        return np.broadcast_to(a, shape)  # a read-only view: gradients are never written

    @staticmethod
    def reshape(a, shape):
        return a.reshape(shape)

    @staticmethod
    def permute(a, axes):
        return a.transpose(axes)

    @staticmethod
    def clip(a, lo, hi):
        return np.clip(a, lo, hi)

    @staticmethod
    def gemm(a, b, trans_a=False, trans_b=False):
        """op(a) @ op(b) of 2-D arrays: the GEMM kernel for float32 (transposes
        as flags, never copies), NumPy otherwise."""
        if a.dtype == _f32 and b.dtype == _f32:
            return _C.gemm(a, b, trans_a, trans_b, 1.0, 0.0, None)
        return (a.T if trans_a else a) @ (b.T if trans_b else b)

    @staticmethod
    def linear(x2, w, b):
        """x2 @ w + b (x2 2-D, b (out,) or None), the bias written first and
        the product accumulated onto it."""
        if x2.dtype == _f32 and w.dtype == _f32 and (b is None or b.dtype == _f32):
            if b is None:
                return _C.gemm(x2, w, False, False, 1.0, 0.0, None)
            out = np.empty((x2.shape[0], w.shape[1]), _f32)
            out[...] = b
            return _C.gemm(x2, w, False, False, 1.0, 1.0, out)
        out = x2 @ w
        return out if b is None else out + b

    @staticmethod
    def activation(name, x):
        """relu, sigmoid or tanh of x."""
        if x.dtype == _f32:
            return _KERNELS[name][0](_contig(x))
        return _UNARY_REF[name][0](x)

    @staticmethod
    def activation_backward(name, y, g):
        """The gradient of an activation through its output y."""
        if y.dtype == _f32:
            return _KERNELS[name][1](y, _contig(g.astype(_f32, copy=False)))
        return _UNARY_REF[name][1](y, g)

    @staticmethod
    def pointwise(name, x, **param):
        """An activation of the kernels' list (elu, selu, gelu, gelu_tanh,
        silu, softplus, softsign, leaky_relu, hard_sigmoid, exponential),
        computed in float32 and returned in x's dtype; param: its keyword
        (elu's alpha, leaky_relu's negative_slope)."""
        y = getattr(_C, name)(_contig(x.astype(_f32, copy=False)), **param)
        return y if x.dtype == _f32 else y.astype(x.dtype)

    @staticmethod
    def pointwise_backward(name, x, g, **param):
        """The gradient of pointwise(name) through its input x."""
        dx = getattr(_C, name + "_backward")(_contig(x.astype(_f32, copy=False)),
                                             _contig(g.astype(_f32, copy=False)), **param)
        return dx if x.dtype == _f32 else dx.astype(x.dtype)

    @staticmethod
    def rows(name, x):
        """softmax or log_softmax over the last axis of a C-contiguous x."""
        if x.dtype == _f32:
            return _KERNELS[name][0](x)
        return _ROWS_REF[name][0](x)

    @staticmethod
    def rows_backward(name, y, g):
        if y.dtype == _f32:
            return _KERNELS[name][1](y, _contig(g.astype(_f32, copy=False)))
        return _ROWS_REF[name][1](y, _contig(g))

    @staticmethod
    def move_last(a, axis):
        """a with axis moved last, C-contiguous."""
        return _contig(np.moveaxis(a, axis, -1))

    @staticmethod
    def move_back(a, axis):
        """The inverse of move_last (a view)."""
        return np.moveaxis(a, -1, axis)

    @staticmethod
    def cross_entropy(x, labels):
        """(mean loss as a 0-d array, softmax probabilities); labels out of
        range are a ValueError (the kernel checks them)."""
        if x.dtype == _f32:
            loss, prob = _C.cross_entropy(_contig(x), labels)
            return np.array(loss, _f32), prob
        n, c = x.shape
        bad = labels[(labels < 0) | (labels >= c)]
        if bad.size:
            raise ValueError(f"cross_entropy: argument 'labels' must hold class indices in "
                             f"[0, {c}), got {bad[0]}")
        logp = _log_softmax_ref(x)
        loss = -logp[np.arange(n), labels].mean() if n else np.nan
        return np.asarray(loss, x.dtype), np.exp(logp)

    @staticmethod
    def cross_entropy_backward(prob, labels, scale):
        if prob.dtype == _f32:
            return _C.cross_entropy_backward(prob, labels, scale)
        gx = prob * scale
        gx[np.arange(prob.shape[0]), labels] -= scale
        return gx

    @staticmethod
    def dropout(x, rate, key):
        """x times the mask of (key, index), scaled by 1 / (1 - rate)."""
        if x.dtype == _f32:
            return _C.dropout(_contig(x), rate, key)
        keep = _C.dropout(np.ones(x.shape, _f32), rate, key) != 0
        return x * keep / (1.0 - rate)

    @staticmethod
    def scalar(value, like):
        """A 0-d array holding value, on like's device, of like's dtype."""
        return np.asarray(value, like.dtype)

    @staticmethod
    def to_float(a):
        return float(a)

    @staticmethod
    def owned_copy(a):
        """A C-contiguous, writeable copy that owns its memory."""
        return np.array(a, order="C", copy=True)

    @staticmethod
    def is_owned(a):
        return a.base is None and a.flags.writeable and a.flags.c_contiguous

    # NumPy's dtype rules, made PyTorch's: float32 stays float32 when it
    # meets integers, bools or Python floats (the GPU is float32 only)
    @staticmethod
    def promote(a, b):
        """An integer or bool array meeting a float one takes the float's dtype."""
        if type(a) is not _ndarray or type(b) is not _ndarray or a.dtype == b.dtype:
            return a, b
        fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
        if fa and not fb:
            b = b.astype(a.dtype)
        elif fb and not fa:
            a = a.astype(b.dtype)
        return a, b

    @staticmethod
    def binary_result(out, a, b):
        """out of a binary op on a and b (arrays or Python numbers) as an
        array: float32, not float64, unless an operand was float64."""
        if type(out) is not _ndarray:
            out = np.asarray(out)
        if out.dtype == np.float64 and not (
                (type(a) is _ndarray and a.dtype == np.float64)
                or (type(b) is _ndarray and b.dtype == np.float64)):
            return out.astype(_f32)
        return out

    @staticmethod
    def result(out, dtype):
        """A reduction's result as an array of dtype."""
        return np.asarray(out, dtype)

    @staticmethod
    def matmul(a, b):
        """numpy.matmul: 1-D operands and stacks of matrices."""
        return np.matmul(a, b)

    @staticmethod
    def kernel_input(a):
        """a as the kernels take it: float32, C-contiguous."""
        if a.dtype != _f32 or not a.flags.c_contiguous:
            return np.ascontiguousarray(a, dtype=_f32)
        return a

    @staticmethod
    def kernel_inputs(arrays):
        """kernel_input of each array (None stays None), as a list."""
        return [a if a is None or (a.dtype == _f32 and a.flags.c_contiguous)
                else np.ascontiguousarray(a, dtype=_f32) for a in arrays]

    @staticmethod
    def is_contiguous(a):
        return a.flags.c_contiguous

    @staticmethod
    def from_host(a):
        """The host array a on this device."""
        return a

    log1p = np.log1p

    @staticmethod
    def concatenate(arrays, axis):
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def take(a, axis, start, stop):
        """a[..., start:stop, ...] along axis (a view)."""
        return a[(slice(None),) * axis + (slice(start, stop),)]

    @staticmethod
    def flip(a, axis):
        return np.flip(a, axis)

    @staticmethod
    def store(a, value):
        """Writes value (an array or number broadcast to a's shape) into a."""
        np.copyto(a, value, casting="unsafe")

    @staticmethod
    def accumulate(acc, g):
        """acc + g, written into acc when it is a writeable array of g's shape."""
        if acc.flags.writeable and acc.shape == g.shape:
            acc += g
            return acc
        return np.add(acc, g)

    @staticmethod
    def can_axpy(a, x):
        """Whether axpy(alpha, x, a) can update a in place with the fused kernel."""
        return (type(x) is _ndarray and a.dtype == _f32 and x.dtype == _f32
                and x.shape == a.shape and a.flags.c_contiguous and x.flags.c_contiguous
                and a.flags.writeable and not np.may_share_memory(a, x))

    @staticmethod
    def full_like(a, value):
        return np.full(a.shape, value, _f32)

    @staticmethod
    def norm(a, p):
        """The p-norm (math.inf: the largest magnitude) of a's elements, a float."""
        flat = a.reshape(-1)
        if p == math.inf:
            return float(np.max(np.abs(flat))) if flat.size else 0.0
        if p == 2.0:
            return math.sqrt(float(np.dot(flat, flat)))
        return float(np.sum(np.abs(flat.astype(np.float64)) ** p) ** (1.0 / p))

    @staticmethod
    def optimizer_step(kernel, *args):
        """One fused optimizer update (kernel: "adam_step", ...) in place."""
        return getattr(_C, kernel)(*args)

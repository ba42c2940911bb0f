"""Array operations per device, so that each op in functional.py is written
once: ``CPU`` works on NumPy arrays (float32 on the C++ kernels of ``_C``,
other dtypes in NumPy), ``GPU`` on ``DeviceArray``s through ``_C_cuda``
(float32 only). ``of(array)`` picks one. Python numbers may stand for
either side of a binary op; results are new arrays (NumPy views where NumPy
makes them)."""
import numpy as np

from . import _C
from . import cuda as _cuda

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


def _cc():
    return _cuda._C_cuda


def _resolve_shape(old, new):
    """new with its -1 (at most one) worked out, as NumPy's reshape does."""
    size = int(np.prod(old, dtype=np.int64))
    known = int(np.prod([d for d in new if d != -1], dtype=np.int64))
    unknown = [i for i, d in enumerate(new) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in new):
        raise ValueError(f"cannot reshape an array of shape {old} into shape {new}")
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"cannot reshape an array of shape {old} into shape {new}")
        new = new[:unknown[0]] + (size // known,) + new[unknown[0] + 1:]
    if int(np.prod(new, dtype=np.int64)) != size:
        raise ValueError(f"cannot reshape an array of shape {old} into shape {new}")
    return new


def _gpu_binary(op, rop):
    def f(a, b):
        if isinstance(a, (int, float)):
            return _cc().scalar(rop, b, float(a))
        if isinstance(b, (int, float)):
            return _cc().scalar(op, a, float(b))
        return _cc().binary(op, a, b)
    f.__name__ = op
    return f


def _gpu_unary(op):
    def f(a):
        return _cc().unary(op, a)
    f.__name__ = op
    return f


class GPU:
    """DeviceArrays (float32) through the CUDA kernels of _C_cuda."""
    name = "cuda"
    add = staticmethod(_gpu_binary("add", "add"))
    sub = staticmethod(_gpu_binary("sub", "rsub"))
    mul = staticmethod(_gpu_binary("mul", "mul"))
    div = staticmethod(_gpu_binary("div", "rdiv"))
    pow = staticmethod(_gpu_binary("pow", "rpow"))
    eq = staticmethod(_gpu_binary("eq", "eq"))
    neg = staticmethod(_gpu_unary("neg"))
    exp = staticmethod(_gpu_unary("exp"))
    log = staticmethod(_gpu_unary("log"))
    sqrt = staticmethod(_gpu_unary("sqrt"))
    abs = staticmethod(_gpu_unary("abs"))

    @staticmethod
    def sign(a):
        zero = _cc().scalar("mul", a, 0.0)
        return _cc().binary("sub", _cc().binary("gt", a, zero), _cc().binary("lt", a, zero))

    @staticmethod
    def sum(a, axes, keepdims):
        return _cc().sum(a, list(axes), bool(keepdims))

    @staticmethod
    def max(a, axes, keepdims):
        return _cc().max(a, list(axes), bool(keepdims))

    @staticmethod
    def broadcast_to(a, shape):
        return _cc().broadcast_to(a, tuple(shape))

    @staticmethod
    def reshape(a, shape):
        return _cc().reshape(a, _resolve_shape(tuple(a.shape), tuple(shape)))

    @staticmethod
    def permute(a, axes):
        return _cc().permute(a, list(axes))

    @staticmethod
    def clip(a, lo, hi):
        if lo is not None:
            a = _cc().scalar("maximum", a, float(lo))
        if hi is not None:
            a = _cc().scalar("minimum", a, float(hi))
        return a

    @staticmethod
    def gemm(a, b, trans_a=False, trans_b=False):
        return _cc().gemm(a, b, trans_a, trans_b, 1.0, 0.0, None)

    @staticmethod
    def linear(x2, w, b):
        if b is None:
            return _cc().gemm(x2, w, False, False, 1.0, 0.0, None)
        out = _cc().broadcast_to(b, (x2.shape[0], w.shape[1]))
        return _cc().gemm(x2, w, False, False, 1.0, 1.0, out)

    @staticmethod
    def pointwise(name, x, **param):
        return getattr(_cc(), name)(x, **param)

    @staticmethod
    def pointwise_backward(name, x, g, **param):
        return getattr(_cc(), name + "_backward")(x, g, **param)

    # relu, sigmoid, tanh: the same calls (their backward takes the output)
    activation, activation_backward = pointwise, pointwise_backward

    @staticmethod
    def rows(name, x):
        return getattr(_cc(), name)(x)

    @staticmethod
    def rows_backward(name, y, g):
        return getattr(_cc(), name + "_backward")(y, g)

    @staticmethod
    def move_last(a, axis):
        perm = [i for i in range(a.ndim) if i != axis] + [axis]
        return _cc().permute(a, perm)

    @staticmethod
    def move_back(a, axis):
        perm = list(range(a.ndim - 1))
        perm.insert(axis, a.ndim - 1)
        return _cc().permute(a, perm)

    @staticmethod
    def cross_entropy(x, labels):
        loss, prob = _cc().cross_entropy(x, labels)
        return _cuda.DeviceArray.from_numpy(np.array(loss, _f32)), prob

    @staticmethod
    def cross_entropy_backward(prob, labels, scale):
        return _cc().cross_entropy_backward(prob, labels, scale)

    @staticmethod
    def dropout(x, rate, key):
        return _cc().dropout(x, rate, key)

    @staticmethod
    def scalar(value, like):
        return _cuda.DeviceArray.from_numpy(np.asarray(value, _f32))

    @staticmethod
    def to_float(a):
        return float(a.numpy())

    @staticmethod
    def owned_copy(a):
        return _cc().copy(a)

    @staticmethod
    def is_owned(a):
        return False  # gradients on the GPU are always copied once into .grad


def of(a):
    """The namespace for array a (a NumPy scalar, which ufuncs return for 0-d
    inputs, counts as a CPU array)."""
    return CPU if type(a) is _ndarray or isinstance(a, np.generic) else GPU

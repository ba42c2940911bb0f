"""``GPU``: the array operations on ``DeviceArray``s (float32) through the
CUDA kernels of ``_C_cuda``."""
import math

import numpy as np

from .. import cuda as _cuda

_f32 = np.dtype(np.float32)


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

    @staticmethod
    def promote(a, b):
        return a, b

    @staticmethod
    def binary_result(out, a, b):
        return out

    @staticmethod
    def result(out, dtype):
        return out

    @staticmethod
    def matmul(a, b):
        raise NotImplementedError("matmul: only 2-D @ 2-D is available for GPU tensors yet")

    @staticmethod
    def kernel_input(a):
        return a  # DeviceArrays are float32 and C-contiguous

    @staticmethod
    def kernel_inputs(arrays):
        return list(arrays)

    @staticmethod
    def is_contiguous(a):
        return True

    @staticmethod
    def from_host(a):
        return _cuda.to_device(a)

    @staticmethod
    def log1p(a):
        return _cc().unary("log", _cc().scalar("add", a, 1.0))

    # No indexing kernels on the GPU yet: reversing, joining and slicing
    # along an axis are products with 0/1 matrices (exact: one 1 per column)
    @staticmethod
    def concatenate(arrays, axis):
        last = arrays[0].ndim - 1
        parts = [GPU.move_last(a, axis) if axis != last else a for a in arrays]
        widths = [p.shape[-1] for p in parts]
        place = np.eye(sum(widths), dtype=_f32)
        out, start = None, 0
        for p, n in zip(parts, widths):
            term = _along_last(p, place[start:start + n])
            out = term if out is None else _cc().binary("add", out, term)
            start += n
        return out if axis == last else GPU.move_back(out, axis)

    @staticmethod
    def take(a, axis, start, stop):
        select = np.eye(a.shape[axis], dtype=_f32)[:, start:stop]
        return _on_axis(a, axis, select)

    @staticmethod
    def flip(a, axis):
        return _on_axis(a, axis, np.eye(a.shape[axis], dtype=_f32)[::-1])

    @staticmethod
    def store(a, value):
        if isinstance(value, (int, float)):
            _cc().fill(a, float(value))
            return
        if tuple(value.shape) != tuple(a.shape):
            value = _cc().broadcast_to(value, tuple(a.shape))
        _cc().assign(a, value)

    @staticmethod
    def accumulate(acc, g):
        return _cc().binary("add", acc, g)

    @staticmethod
    def can_axpy(a, x):
        return _cuda.is_device_array(x) and tuple(x.shape) == tuple(a.shape)

    @staticmethod
    def full_like(a, value):
        out = _cc().copy(a)  # allocated on a's device
        _cc().fill(out, float(value))
        return out

    @staticmethod
    def norm(a, p):
        if a.size == 0:
            return 0.0
        axes = list(range(a.ndim))
        if p == math.inf:
            return float(_cc().max(_cc().unary("abs", a), axes, False).numpy())
        if p == 2.0:
            return math.sqrt(float(_cc().sum(_cc().binary("mul", a, a), axes, False).numpy()))
        powered = _cc().scalar("pow", _cc().unary("abs", a), float(p))
        return float(_cc().sum(powered, axes, False).numpy()) ** (1.0 / p)

    @staticmethod
    def optimizer_step(kernel, *args):
        return getattr(_cc(), kernel)(*args)

    @staticmethod
    def upload(a, index=None):
        """A DeviceArray copy of the host array a on GPU ``index`` (None: the current one)."""
        if index is None:
            return _cuda.to_device(a)
        previous = _cc().current_device()
        _cc().set_device(index)
        try:
            return _cuda.to_device(a)
        finally:
            _cc().set_device(previous)

    @staticmethod
    def current_device():
        return _cc().current_device()


def _along_last(a, matrix):
    """a (..., n) times the host matrix (n, m): (..., m), on the GPU."""
    rows = _cc().reshape(a, (math.prod(a.shape[:-1]), a.shape[-1])) if a.ndim != 2 else a
    m = _cuda.DeviceArray.from_numpy(np.ascontiguousarray(matrix))
    out = _cc().gemm(rows, m, False, False, 1.0, 0.0, None)
    return _cc().reshape(out, tuple(a.shape[:-1]) + (matrix.shape[1],))


def _on_axis(a, axis, matrix):
    """a with ``axis`` mapped by the host matrix (n, m), on the GPU."""
    if axis == a.ndim - 1:
        return _along_last(a, matrix)
    return GPU.move_back(_along_last(GPU.move_last(a, axis), matrix), axis)


# kernels that take the same arguments on both devices: conv and pooling
# (window as _checks.conv_window / pool_window give it), the recurrent
# sequence kernels, and axpy (y += alpha * x in place)


def call(name):
    """The _C_cuda function `name`, looked up at each call (tests stand a
    NumPy module in for it)."""
    def f(*args, **kwargs):
        return getattr(_cc(), name)(*args, **kwargs)
    f.__name__ = name
    return f

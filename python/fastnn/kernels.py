"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. Arguments are checked here so that errors name the argument and
the shapes; the C++ side checks again before touching memory."""
import numbers

import numpy as np

from . import _C
from . import cuda as _cuda

__all__ = ["gemm"]


def _matrix(x, name, fn):
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{fn}: argument '{name}' must be an array of numbers ({e})") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(
            f"{fn}: argument '{name}' must be an array of numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{fn}: argument '{name}' must be 2-D, got shape {arr.shape}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if not (arr.strides[1] == 4 or arr.strides[0] == 4 or arr.size <= 1):
        arr = np.ascontiguousarray(arr)
    elif arr.strides[0] % 4 or arr.strides[1] % 4 or min(arr.strides) < 0:
        arr = np.ascontiguousarray(arr)
    return arr


def _scalar(x, name, fn):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{fn}: argument '{name}' must be a real number, got {type(x).__name__}")
    return float(x)


def gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """C = alpha * op(a) @ op(b) + beta * C in float32, op(x) = x.T when trans_x.

    With ``c`` given (float32, C-contiguous, shape (M, N)) the result is written
    into it and it is returned; otherwise a new array is returned and C counts
    as zero. When beta is 0, C is never read.
    """
    if _cuda.is_device_array(a) or _cuda.is_device_array(b) or _cuda.is_device_array(c):
        return _cuda.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta, c=c)
    alpha = _scalar(alpha, "alpha", "gemm")
    beta = _scalar(beta, "beta", "gemm")
    a = _matrix(a, "a", "gemm")
    b = _matrix(b, "b", "gemm")
    trans_a, trans_b = bool(trans_a), bool(trans_b)
    m, k = a.shape[::-1] if trans_a else a.shape
    kb, n = b.shape[::-1] if trans_b else b.shape
    if k != kb:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) has shape {(m, k)} and op(b) has shape "
            f"{(kb, n)}")
    if c is None:
        c = np.empty((m, n), dtype=np.float32)
        beta = 0.0
    else:
        if not isinstance(c, np.ndarray):
            raise TypeError(f"gemm: argument 'c' must be a numpy.ndarray, got {type(c).__name__}")
        if c.dtype != np.float32:
            raise TypeError(f"gemm: argument 'c' must be float32, got dtype {c.dtype}")
        if c.shape != (m, n):
            raise ValueError(f"gemm: argument 'c' must have shape {(m, n)}, got {c.shape}")
        if not c.flags.c_contiguous:
            raise ValueError("gemm: argument 'c' must be C-contiguous")
        if not c.flags.writeable:
            raise ValueError("gemm: argument 'c' must be writeable")
        # the kernel reads a and b while it writes c: never let them overlap
        if np.may_share_memory(a, c):
            a = a.copy()
        if np.may_share_memory(b, c):
            b = b.copy()
    return _C.gemm(a, b, trans_a, trans_b, alpha, beta, c)

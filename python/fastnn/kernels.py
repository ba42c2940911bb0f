"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. The C++ side checks shapes, dtypes and layouts and names the
argument in its errors; here only what is not a float32 array is converted,
so the common call costs little more than the kernel."""
import numbers

import numpy as np

from . import _C
from . import cuda as _cuda

__all__ = ["gemm"]

def _as_float32(x, name, fn):
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
    return arr.astype(np.float32, copy=False)


def _real(x, name, fn):
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{fn}: argument '{name}' must be a real number, got {type(x).__name__}")
    return float(x)


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
    a = _as_float32(a, "a", "gemm")
    b = _as_float32(b, "b", "gemm")
    alpha = _real(alpha, "alpha", "gemm")
    beta = _real(beta, "beta", "gemm")
    return _C.gemm(a, b, bool(trans_a), bool(trans_b), alpha, beta, c)

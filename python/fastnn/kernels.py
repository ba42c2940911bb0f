"""Kernels on NumPy arrays: no autograd, float32, the GIL released while
they run. The C++ side checks shapes, dtypes and layouts and names the
argument in its errors; here only what is not a float32 array is converted,
so the common call costs little more than the kernel."""
from . import _C
from . import cuda as _cuda
from ._checks import as_float32, real

__all__ = ["gemm"]


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

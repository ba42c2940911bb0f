"""GEMM reference: C = alpha * op(A) @ op(B) + beta * C, in float64."""
import numpy as np


def gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """Returns alpha * op(a) @ op(b) + beta * c as a new float64 array.

    op(x) is x.T when trans_x is set. Without ``c``, or when beta is 0, C is
    not read (it may hold NaN), as BLAS and fastnn define it.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    out = alpha * (op_a @ op_b)
    if c is not None and beta != 0:
        out = out + beta * np.asarray(c, dtype=np.float64)
    return out


def gemm_error_scale(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    """An element-wise scale for the rounding error of a float32 GEMM.

    The rounding error of a length-K dot product is bounded by a multiple of
    sum_k |a_ik| |b_kj|, which Cauchy-Schwarz bounds by |row i of op(a)| *
    |column j of op(b)|; scaled by |alpha|, plus |beta * c| for the update.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    rows = np.sqrt((op_a * op_a).sum(axis=1))
    cols = np.sqrt((op_b * op_b).sum(axis=0))
    scale = abs(alpha) * np.outer(rows, cols)
    if c is not None and beta != 0:
        scale = scale + abs(beta) * np.abs(np.asarray(c, dtype=np.float64))
    return scale

"""Broadcasting arithmetic, matmul and linear (Dense's product)."""
import math

import numpy as np

from ._plumbing import (_binary, _grads, _inputs, _is_scalar, _mode, _needs,
                        _operands, _record, _shape, _tensor, _unbroadcast, _wrap, _xp)

__all__ = ["add", "div", "linear", "matmul", "mul", "neg", "pow", "sub"]


def _binary_op(name, grad_a, grad_b, doc):
    """A broadcasting binary op. grad_a/grad_b(xp, g, a, b, out) give the
    gradient of each side before it is summed back to that side's shape."""
    label = name.capitalize() + "Backward"

    def op(a, b):
        ta, da, tb, db, xp, out = _binary(name, a, b, name)
        if not _needs(ta, tb):
            return _wrap(out)
        sa, sb = _shape(da), _shape(db)

        def backward(g):
            ga = gb = None
            if ta is not None and ta._rg:
                ga = _unbroadcast(grad_a(xp, g, da, db, out), sa, xp)
            if tb is not None and tb._rg:
                gb = _unbroadcast(grad_b(xp, g, da, db, out), sb, xp)
            return _grads(ta, tb, ga, gb)
        return _record(out, _inputs(ta, tb), backward, label)
    op.__name__ = name
    op.__doc__ = doc
    return op


def _pow_grad_base(xp, g, a, b, out):
    """d/da a**b = b a**(b-1), taken as 0 where b == 0 (a**(-1) is inf at
    a == 0): there the exponent b-1 is replaced by 0, so the product is 0 * a**0."""
    if _is_scalar(b):
        if b == 0:
            return xp.mul(g, 0.0)
        return xp.mul(g, xp.mul(a, 2.0) if b == 2 else xp.mul(xp.pow(a, b - 1), b))
    zero = xp.eq(b, xp.mul(b, 0.0))
    return xp.mul(g, xp.mul(b, xp.pow(a, xp.sub(xp.add(b, zero), 1.0))))


def _pow_grad_exponent(xp, g, a, b, out):
    """d/db a**b = a**b log(a), taken as 0 where a == 0 (log(a) is -inf
    there): there log is taken of 1 instead."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if _is_scalar(a):
            log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
            return xp.mul(xp.mul(g, out), log_a)
        zero = xp.eq(a, xp.mul(a, 0.0))
        return xp.mul(xp.mul(g, out), xp.log(xp.add(a, zero)))


add = _binary_op("add", lambda xp, g, a, b, y: g, lambda xp, g, a, b, y: g,
                 "a + b with NumPy broadcasting.")
sub = _binary_op("sub", lambda xp, g, a, b, y: g, lambda xp, g, a, b, y: xp.neg(g),
                 "a - b with NumPy broadcasting.")
mul = _binary_op("mul", lambda xp, g, a, b, y: xp.mul(g, b), lambda xp, g, a, b, y: xp.mul(g, a),
                 "a * b with NumPy broadcasting.")
div = _binary_op("div", lambda xp, g, a, b, y: xp.div(g, b),
                 lambda xp, g, a, b, y: xp.neg(xp.div(xp.mul(g, y), b)),
                 "a / b with NumPy broadcasting.")
pow = _binary_op("pow", _pow_grad_base, _pow_grad_exponent,
                 "a ** b with NumPy broadcasting; d/da is 0 where b == 0, d/db 0 where a == 0.")


def neg(x):
    """-x."""
    x = _tensor(x, "neg")
    xp = _xp("neg", x)
    out = xp.neg(x._data)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,), lambda g: (xp.neg(g),), "NegBackward")


def _rsub(a, b):
    return sub(b, a)


def _rdiv(a, b):
    return div(b, a)


def _rpow(a, b):
    return pow(b, a)


def _rmatmul(a, b):
    return matmul(b, a)


# ---------------------------------------------------------------- matmul
def matmul(a, b):
    """a @ b as numpy.matmul: 2-D products on the GEMM kernel; 1-D operands and
    stacks of matrices (broadcast over the leading axes) too."""
    ta, da, tb, db, xp = _operands(a, b, "matmul")
    if _is_scalar(da) or _is_scalar(db) or da.ndim == 0 or db.ndim == 0:
        raise ValueError(f"matmul: arguments must have at least 1 dimension, got shapes "
                         f"{_shape(da)} and {_shape(db)}")
    ka = da.shape[-1]
    kb = db.shape[-2] if db.ndim > 1 else db.shape[0]
    if ka != kb:
        raise ValueError(f"matmul: shapes {da.shape} and {db.shape} do not match: "
                         f"{ka} (last axis of a) != {kb} (axis -2 of b)")
    if da.ndim == 2 and db.ndim == 2:
        out = xp.gemm(da, db)
    else:
        try:
            out = xp.matmul(da, db)
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {da.shape} and {db.shape} do not "
                             "broadcast together") from None
    out = xp.binary_result(out, da, db)
    if not _needs(ta, tb):
        return _wrap(out)

    def backward(g):
        ga = gb = None
        need_a = ta is not None and ta._rg
        need_b = tb is not None and tb._rg
        if da.ndim == 2 and db.ndim == 2:
            if need_a:
                ga = xp.gemm(g, db, False, True)
            if need_b:
                gb = xp.gemm(da, g, True, False)
            return _grads(ta, tb, ga, gb)
        a2 = da if da.ndim > 1 else da[None, :]
        b2 = db if db.ndim > 1 else db[:, None]
        # g with the axes that numpy.matmul dropped for 1-D operands put back
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = np.reshape(g, batch + (a2.shape[-2], b2.shape[-1]))
        if need_a:
            ga = _unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(da.shape)
        if need_b:
            gb = _unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(db.shape)
        return _grads(ta, tb, ga, gb)
    return _record(out, _inputs(ta, tb), backward, "MatmulBackward")


def linear(x, w, b=None):
    """x @ w + b, w of shape (in, out) as Keras's Dense kernel. x may have
    leading axes: (..., in) -> (..., out). Forward and both gradients run on
    the GEMM kernel with its transpose flags; no transposed copies."""
    x = _tensor(x, "linear", "x")
    w = _tensor(w, "linear", "w")
    dx, dw = x._data, w._data
    if b is not None:
        b = _tensor(b, "linear", "b")
    xp = _xp("linear", x, w, b)
    if dw.ndim != 2:
        raise ValueError(f"linear: argument 'w' must be 2-D (in, out), got shape {dw.shape}")
    if dx.ndim < 1 or dx.shape[-1] != dw.shape[0]:
        raise ValueError(f"linear: argument 'x' must have shape (..., {dw.shape[0]}) to match "
                         f"'w' of shape {dw.shape}, got {dx.shape}")
    n_out = dw.shape[1]
    if b is not None and tuple(b._data.shape) != (n_out,):
        raise ValueError(f"linear: argument 'b' must have shape ({n_out},), got "
                         f"{tuple(b._data.shape)}")
    if dw.dtype.kind != "f":  # integer or bool weights compute in x's float type, or float32
        dw = dw.astype(dx.dtype if dx.dtype.kind == "f" else np.float32)
    if dx.dtype.kind != "f":
        dx = dx.astype(dw.dtype)
    x_shape = tuple(dx.shape)
    rows = math.prod(x_shape[:-1])  # not -1: in may be 0
    x2 = xp.reshape(dx, (rows, x_shape[-1])) if dx.ndim != 2 else dx
    out = xp.linear(x2, dw, None if b is None else b._data)
    if dx.ndim != 2:
        out = xp.reshape(out, x_shape[:-1] + (n_out,))
    if not (_mode.enabled and (x._rg or w._rg or (b is not None and b._rg))):
        return _wrap(out)
    inputs = (x, w) if b is None else (x, w, b)

    def backward(g):
        g2 = xp.reshape(g, (rows, n_out)) if g.ndim != 2 else g
        gx = xp.reshape(xp.gemm(g2, dw, False, True), x_shape) if x._rg else None
        gw = xp.gemm(x2, g2, True, False) if w._rg else None
        if b is None:
            return gx, gw
        return gx, gw, (xp.sum(g2, (0,), False) if b._rg else None)
    return _record(out, inputs, backward, "LinearBackward")

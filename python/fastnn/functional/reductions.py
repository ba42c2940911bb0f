"""Reductions over axes: sum, mean, max, min, argmax."""
import math

import numpy as np

from ._plumbing import _axes, _cpu_only, _mode, _record, _tensor, _wrap, _xp
from .arithmetic import neg

__all__ = ["argmax", "max", "mean", "min", "sum"]


def _expand(g, axes, keepdims, shape, xp):
    """g (reduced over axes) broadcast back to ``shape``."""
    if not keepdims and axes:
        g = xp.reshape(g, tuple(1 if i in axes else n for i, n in enumerate(shape)))
    return xp.broadcast_to(g, shape)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all)."""
    x = _tensor(x, "sum")
    xp = _xp("sum", x)
    d = x._data
    axes = _axes(axis, d.ndim, "sum")
    out = xp.sum(d, axes, keepdims)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    shape = tuple(d.shape)
    return _record(out, (x,), lambda g: (_expand(g, axes, keepdims, shape, xp),), "SumBackward")


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all)."""
    x = _tensor(x, "mean")
    xp = _xp("mean", x)
    d = x._data
    axes = _axes(axis, d.ndim, "mean")
    shape = tuple(d.shape)
    count = math.prod(shape[a] for a in axes)
    scale = 1.0 / count if count else float("nan")
    out = xp.mul(xp.sum(d, axes, keepdims), scale)
    out = xp.result(out, d.dtype if d.dtype.kind == "f" else np.float32)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,), lambda g: (_expand(xp.mul(g, scale), axes, keepdims, shape, xp),),
                   "MeanBackward")


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all); the gradient is shared equally by
    the elements that tie for the maximum."""
    x = _tensor(x, "max")
    xp = _xp("max", x)
    d = x._data
    axes = _axes(axis, d.ndim, "max")
    shape = tuple(d.shape)
    if any(shape[a] == 0 for a in axes):
        raise ValueError(f"max: cannot reduce an empty axis of a tensor of shape {shape}")
    kept = xp.max(d, axes, True)
    out = kept if keepdims or not axes else xp.reshape(
        kept, tuple(n for i, n in enumerate(shape) if i not in axes))
    if not (_mode.enabled and x._rg):
        return _wrap(out)

    def backward(g):
        mask = xp.eq(d, xp.broadcast_to(kept, shape))
        share = xp.div(mask, xp.broadcast_to(xp.sum(mask, axes, True), shape))
        return (xp.mul(share, _expand(g, axes, keepdims, shape, xp)),)
    return _record(out, (x,), backward, "MaxBackward")


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (None: all); ties share the gradient equally."""
    return neg(max(neg(x), axis=axis, keepdims=keepdims))


def argmax(x, axis=None):
    """Index of the (first) maximum over ``axis`` (None: of the flattened
    tensor), as an int64 tensor; not differentiable."""
    x = _tensor(x, "argmax")
    _cpu_only("argmax", x)
    d = x._data
    if axis is not None:
        axis = _axes(axis, d.ndim, "argmax")[0]
    if d.size == 0:
        raise ValueError(f"argmax: cannot take the argmax of an empty tensor of shape {d.shape}")
    return _wrap(np.asarray(np.argmax(d, axis=axis)))

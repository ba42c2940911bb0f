"""Shapes and indexing: reshape, permute, transpose, getitem, concatenate, stack."""
import numpy as np

from ..tensor import _index_arrays
from ._plumbing import Tensor, _axes, _cpu_only, _mode, _ndarray, _record, _tensor, _wrap, _xp

__all__ = ["concatenate", "flip", "getitem", "permute", "reshape", "stack", "transpose"]


def _sizes(x, sizes, fn):
    """(tensor, its array's namespace, its array, the sizes given one by one
    or as one tuple or list)."""
    x = _tensor(x, fn)
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    return x, _xp(fn, x), x._data, sizes


def reshape(x, *shape):
    """x with a new shape (one entry may be -1); a view when NumPy can make one."""
    x, xp, d, shape = _sizes(x, shape, "reshape")
    in_shape = tuple(d.shape)
    try:
        out = xp.reshape(d, shape)
    except (ValueError, TypeError) as e:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {in_shape} into shape "
                         f"{tuple(shape)} ({e})") from None
    if not (_mode.enabled and x._rg):
        return _wrap(out, ver=x._ver)
    return _record(out, (x,), lambda g: (xp.reshape(g, in_shape),), "ReshapeBackward", view_of=x)


def permute(x, *axes):
    """The axes of x reordered: out.shape[i] = x.shape[axes[i]] (a view)."""
    x, xp, d, axes = _sizes(x, axes, "permute")
    if len(axes) != d.ndim or sorted(int(a) % d.ndim if d.ndim else a for a in axes) != list(range(d.ndim)):
        raise ValueError(f"permute: argument 'axes' must be a permutation of the {d.ndim} axes "
                         f"of a tensor of shape {tuple(d.shape)}, got {tuple(axes)}")
    axes = tuple(int(a) % d.ndim for a in axes)
    out = xp.permute(d, axes)
    if not (_mode.enabled and x._rg):
        return _wrap(out, ver=x._ver)
    inverse = tuple(int(i) for i in np.argsort(axes))
    return _record(out, (x,), lambda g: (xp.permute(g, inverse),), "PermuteBackward", view_of=x)


def transpose(x, *axes):
    """With no axes the axes reversed; with two axes those two swapped (as
    torch.transpose, also for 2-D tensors); with a tuple of all axes (or
    more than two) that permutation (as numpy.transpose)."""
    x = _tensor(x, "transpose")
    swap = len(axes) == 2
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    nd = x._data.ndim
    if not axes:
        axes = tuple(range(nd))[::-1]
    elif swap:
        i, j = axes
        if not (-nd <= i < nd and -nd <= j < nd):
            raise ValueError(f"transpose: axes {axes} out of range for shape {x.shape}")
        perm = list(range(nd))
        perm[i % nd], perm[j % nd] = perm[j % nd], perm[i % nd]
        axes = tuple(perm)
    return permute(x, axes)


def getitem(x, idx):
    """x[idx] with NumPy's rules (slices, integers, None, Ellipsis, integer and
    boolean arrays); the gradient of repeated indices adds up."""
    _cpu_only("getitem", x)
    d = x._data
    idx, basic = _index_arrays(idx)
    try:
        out = d[idx]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (tensor of shape {d.shape})") from None
    out = np.asarray(out) if type(out) is not _ndarray else out
    view = x._ver if basic else None
    if not (_mode.enabled and x._rg):
        return _wrap(out, ver=view)

    def backward(g):
        gx = np.zeros(d.shape, g.dtype)
        if basic:
            gx[idx] = g
        else:
            np.add.at(gx, idx, g)
        return (gx,)
    return _record(out, (x,), backward, "IndexBackward", view_of=x if basic else None)


def _sequence(tensors, fn):
    """The tensors of a list or tuple, and the namespace of their device."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{fn}: argument 'tensors' must be a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{fn}: argument 'tensors' must not be empty")
    ts = [_tensor(t, fn, "tensors") for t in tensors]
    return ts, _xp(fn, *ts)


def concatenate(tensors, axis=0):
    """The tensors joined along an existing axis."""
    ts, xp = _sequence(tensors, "concatenate")
    datas = [t._data for t in ts]
    nd = datas[0].ndim
    if nd == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated")
    ax = _axes(axis, nd, "concatenate")[0]
    shapes = [tuple(d.shape) for d in datas]
    if any(len(s) != nd or s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:]
           for s in shapes):
        raise ValueError(f"concatenate: shapes {shapes} differ outside axis {axis}")
    out = xp.concatenate(datas, ax)
    if not (_mode.enabled and any(t._rg for t in ts)):
        return _wrap(out)
    bounds = np.cumsum([0] + [s[ax] for s in shapes])

    def backward(g):
        return tuple(xp.take(g, ax, bounds[i], bounds[i + 1]) if ts[i]._rg else None
                     for i in range(len(ts)))
    return _record(out, tuple(ts), backward, "ConcatenateBackward")


def flip(x, axis):
    """x with the order of its elements along ``axis`` reversed (a view on
    the CPU)."""
    x = _tensor(x, "flip")
    xp = _xp("flip", x)
    d = x._data
    ax = _axes(axis, d.ndim, "flip")[0]
    out = xp.flip(d, ax)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,), lambda g: (xp.flip(g, ax),), "FlipBackward")


def stack(tensors, axis=0):
    """The tensors (all of one shape) joined along a new axis."""
    ts, xp = _sequence(tensors, "stack")
    _cpu_only("stack", *ts)
    datas = [t._data for t in ts]
    if len({x.shape for x in datas}) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got "
                         f"{[x.shape for x in datas]}")
    ax = _axes(axis, datas[0].ndim + 1, "stack")[0]
    out = np.stack(datas, axis=ax)
    if not (_mode.enabled and any(t._rg for t in ts)):
        return _wrap(out)
    lead = (slice(None),) * ax

    def backward(g):
        return tuple(g[lead + (i,)] if ts[i]._rg else None for i in range(len(ts)))
    return _record(out, tuple(ts), backward, "StackBackward")

"""Differentiable ops (``import fastnn.functional as F``).

Each op computes its output from the input arrays and, when grad mode is on
and an input requires a gradient, records a node whose closure maps the
output gradient to input gradients. float32 arrays run on the C++ kernels
(fastnn._C); other float dtypes (float64, for precise gradient checks) run
the same formulas in NumPy. Tensor operators and methods are installed on
``Tensor`` at the end of this module.
"""
import math
import numbers
import weakref

import numpy as np

from . import _random
from . import cuda as _cuda
from . import kernels as _K
from ._backend import CPU, GPU
from .autograd import Node, _mode
from .tensor import Tensor, _as_array, _wrap

__all__ = [
    "abs", "add", "argmax", "avg_pool2d", "binary_cross_entropy", "categorical_crossentropy",
    "clip", "concatenate", "conv2d", "cross_entropy", "div",
    "dropout", "exp", "linear", "log", "log_softmax", "matmul", "max", "max_pool2d", "mean",
    "min", "mse_loss", "mul", "neg",
    "permute", "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt", "stack", "sub", "sum",
    "sparse_categorical_crossentropy", "tanh", "transpose",
]

_ndarray = np.ndarray


# ---------------------------------------------------------------- plumbing
def _record(data, inputs, backward, name, view_of=None):
    """The op's output, recorded on the graph. ``view_of``: the input whose
    memory the output shares (its version cell is then shared too)."""
    node = Node(inputs, backward, name)
    out = _wrap(data, True, node, ver=None if view_of is None else view_of._ver)
    node.out_versions = ((out._ver, out._ver[0]),)
    return out


def _tensor(x, fn, name="x"):
    """x as a Tensor: constants (arrays, numbers) become tensors that need no grad."""
    if isinstance(x, Tensor):
        return x
    if not isinstance(x, (numbers.Number, np.ndarray, np.generic, list, tuple)):
        raise TypeError(f"{fn}: argument '{name}' must be a Tensor or an array, got "
                        f"{type(x).__name__}")
    return _wrap(_as_array(x, None, fn, name))


def _xp(fn, *tensors):
    """The array namespace of the tensors' device; ValueError if they are on
    different devices (None entries are skipped)."""
    on_cpu = [type(t._data) is _ndarray for t in tensors if t is not None]
    if all(on_cpu):
        return CPU
    if any(on_cpu):
        raise ValueError(f"{fn}: all tensors must be on the same device, got cpu and cuda "
                         "(move them with .to(device))")
    return GPU


def _cpu_only(fn, *tensors):
    """For ops that have no GPU version yet."""
    if _xp(fn, *tensors) is not CPU:
        raise NotImplementedError(
            f"{fn}: not available for GPU tensors yet; move them with .to('cpu')")


def _unbroadcast(g, shape, xp=CPU):
    """g summed over the axes that broadcasting added or stretched, to ``shape``."""
    gshape = tuple(g.shape)
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and gshape[i + lead] != 1)
    if axes:
        g = xp.sum(g, axes, True)
    return xp.reshape(g, shape)


def _operands(a, b, fn):
    """(tensor or None, array or scalar) for each side, and the array
    namespace; at least one side is a Tensor."""
    if isinstance(a, Tensor):
        ta, da = a, a._data
    else:
        ta, da = None, _constant(a, fn, "a")
    if isinstance(b, Tensor):
        tb, db = b, b._data
    else:
        tb, db = None, _constant(b, fn, "b")
    if type(da) is _ndarray or type(db) is _ndarray:
        if not ((type(da) is _ndarray or _is_scalar(da)) and (type(db) is _ndarray or _is_scalar(db))):
            raise ValueError(f"{fn}: all tensors must be on the same device, got cpu and cuda "
                             "(move them with .to(device))")
        if type(da) is _ndarray and type(db) is _ndarray and da.dtype != db.dtype:
            da, db = _common_float(da, db)
        return ta, da, tb, db, CPU
    return ta, da, tb, db, GPU


def _common_float(da, db):
    """An integer or bool array meeting a float one takes the float's dtype
    (float32 stays float32, as in PyTorch; NumPy would give float64)."""
    fa, fb = da.dtype.kind == "f", db.dtype.kind == "f"
    if fa and not fb:
        db = db.astype(da.dtype)
    elif fb and not fa:
        da = da.astype(db.dtype)
    return da, db


def _is_scalar(x):
    return isinstance(x, (int, float))


def _constant(x, fn, name):
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "iuf":
        return x.item()  # a NumPy scalar counts as a Python one (it must not promote float32)
    if isinstance(x, (np.ndarray, list, tuple, bool, np.bool_)):
        return _as_array(x, None, fn, name)
    raise TypeError(f"{fn}: argument '{name}' must be a Tensor, an array or a number, got "
                    f"{type(x).__name__}")


def _shape(x):
    return () if _is_scalar(x) else tuple(x.shape)


def _fix_dtype(out, da, db):
    """Integer tensors mixed with a Python float give float32, not float64."""
    if type(out) is _ndarray and out.dtype == np.float64 and not (
            (type(da) is _ndarray and da.dtype == np.float64)
            or (type(db) is _ndarray and db.dtype == np.float64)):
        return out.astype(np.float32)
    return out


def _binary(fn, a, b, op):
    """Operands, namespace and xp.<op>(a, b) for a broadcasting binary op."""
    ta, da, tb, db, xp = _operands(a, b, fn)
    try:
        out = getattr(xp, op)(da, db)
    except ValueError as e:
        try:
            np.broadcast_shapes(_shape(da), _shape(db))
        except ValueError:
            raise ValueError(f"{fn}: shapes {_shape(da)} and {_shape(db)} do not broadcast "
                             "together") from None
        raise ValueError(f"{fn}: {e}") from None
    if xp is CPU:
        if type(out) is not _ndarray:
            out = np.asarray(out)
        out = _fix_dtype(out, da, db)
    return ta, da, tb, db, xp, out


def _needs(ta, tb):
    return _mode.enabled and ((ta is not None and ta._rg) or (tb is not None and tb._rg))


def _inputs(ta, tb):
    return tuple(t for t in (ta, tb) if t is not None)


def _pair(ta, tb, ga, gb):
    """Gradients in the order of the recorded inputs (only the tensors)."""
    if ta is None:
        return (gb,)
    if tb is None:
        return (ga,)
    return ga, gb


# ---------------------------------------------------------------- arithmetic
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
            return _pair(ta, tb, ga, gb)
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
        if xp is not CPU:
            raise NotImplementedError("matmul: only 2-D @ 2-D is available for GPU tensors yet")
        try:
            out = np.matmul(da, db)
        except ValueError:
            raise ValueError(f"matmul: batch shapes of {da.shape} and {db.shape} do not "
                             "broadcast together") from None
    if xp is CPU:
        out = _fix_dtype(np.asarray(out), da, db)
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
            return _pair(ta, tb, ga, gb)
        a2 = da if da.ndim > 1 else da[None, :]
        b2 = db if db.ndim > 1 else db[:, None]
        # g with the axes that numpy.matmul dropped for 1-D operands put back
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = np.reshape(g, batch + (a2.shape[-2], b2.shape[-1]))
        if need_a:
            ga = _unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(da.shape)
        if need_b:
            gb = _unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(db.shape)
        return _pair(ta, tb, ga, gb)
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


# ---------------------------------------------------------------- reductions
def _axes(axis, ndim, fn):
    """axis (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{fn}: argument 'axis' must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{fn}: axis {a} is out of range for a tensor of {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: repeated axis in {axis!r}")
    return tuple(sorted(out))


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
    if xp is CPU:
        out = np.asarray(out, d.dtype if d.dtype.kind == "f" else np.float32)
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


# ---------------------------------------------------------------- shapes
def reshape(x, *shape):
    """x with a new shape (one entry may be -1); a view when NumPy can make one."""
    x = _tensor(x, "reshape")
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    xp = _xp("reshape", x)
    d = x._data
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
    x = _tensor(x, "permute")
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    xp = _xp("permute", x)
    d = x._data
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


def _index_arrays(idx):
    """The index with tensors replaced by their arrays; and whether it is basic."""
    items = idx if isinstance(idx, tuple) else (idx,)
    basic = True
    out = []
    for i in items:
        if isinstance(i, Tensor):
            i = i.numpy()
        if isinstance(i, list):
            i = np.asarray(i)
        if not (i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
                and not isinstance(i, bool)):
            basic = False
        out.append(i)
    return (tuple(out) if isinstance(idx, tuple) else out[0]), basic


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
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{fn}: argument 'tensors' must be a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{fn}: argument 'tensors' must not be empty")
    ts = [_tensor(t, fn, "tensors") for t in tensors]
    _cpu_only(fn, *ts)
    return ts


def concatenate(tensors, axis=0):
    """The tensors joined along an existing axis."""
    ts = _sequence(tensors, "concatenate")
    datas = [t._data for t in ts]
    nd = datas[0].ndim
    if nd == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated")
    ax = _axes(axis, nd, "concatenate")[0]
    try:
        out = np.concatenate(datas, axis=ax)
    except ValueError:
        raise ValueError(f"concatenate: shapes {[x.shape for x in datas]} differ outside axis "
                         f"{axis}") from None
    if not (_mode.enabled and any(t._rg for t in ts)):
        return _wrap(out)
    bounds = np.cumsum([0] + [x.shape[ax] for x in datas])
    lead = (slice(None),) * ax

    def backward(g):
        return tuple(g[lead + (slice(bounds[i], bounds[i + 1]),)] if ts[i]._rg else None
                     for i in range(len(ts)))
    return _record(out, tuple(ts), backward, "ConcatenateBackward")


def stack(tensors, axis=0):
    """The tensors (all of one shape) joined along a new axis."""
    ts = _sequence(tensors, "stack")
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


# ---------------------------------------------------------------- pointwise
def _unary_input(x, fn):
    x = _tensor(x, fn)
    xp = _xp(fn, x)
    d = x._data
    if d.dtype.kind != "f":
        d = d.astype(np.float32)
    return x, d, xp


def clip(x, min=None, max=None):
    """x limited to [min, max]; the gradient passes where min <= x <= max."""
    x, d, xp = _unary_input(x, "clip")
    if min is None and max is None:
        raise ValueError("clip: at least one of 'min' and 'max' must be given")
    out = xp.clip(d, min, max)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    # inside the bounds (ends included) clipping changed nothing
    return _record(out, (x,), lambda g: (xp.mul(g, xp.eq(out, d)),), "ClipBackward")


def _elementwise(name, forward, backward, doc):
    """An elementwise op: forward(xp, x) -> y, backward(xp, g, x, y) -> dx."""
    label = name.capitalize() + "Backward"

    def op(x):
        x, d, xp = _unary_input(x, name)
        out = forward(xp, d)
        if not (_mode.enabled and x._rg):
            return _wrap(out)
        return _record(out, (x,), lambda g: (backward(xp, g, d, out),), label)
    op.__name__ = name
    op.__doc__ = doc
    return op


def _activation(name, doc):
    """An activation on the kernels, its backward written through the output."""
    op = _elementwise(name, lambda xp, x: xp.activation(name, x),
                      lambda xp, g, x, y: xp.activation_backward(name, y, g), doc)
    if name != "sigmoid":
        return op

    def sigmoid(x):
        x = _tensor(x, name)
        return _note_input(op(x), "sigmoid", x)  # for binary_cross_entropy
    sigmoid.__doc__ = doc
    return sigmoid


exp = _elementwise("exp", lambda xp, x: xp.exp(x), lambda xp, g, x, y: xp.mul(g, y), "e ** x.")
log = _elementwise("log", lambda xp, x: xp.log(x), lambda xp, g, x, y: xp.div(g, x),
                   "Natural logarithm.")
sqrt = _elementwise("sqrt", lambda xp, x: xp.sqrt(x),
                    lambda xp, g, x, y: xp.div(xp.mul(g, 0.5), y), "Square root.")
abs = _elementwise("abs", lambda xp, x: xp.abs(x),
                   lambda xp, g, x, y: xp.mul(g, xp.sign(x)), "|x| (gradient sign(x), 0 at 0).")
relu = _activation("relu", "max(x, 0).")
sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)).")
tanh = _activation("tanh", "Hyperbolic tangent.")


def _row_op(name, doc):
    """softmax or log_softmax along an axis: the row kernel over the last
    axis, the axis moved there (and back) when it is another."""
    label = name.replace("_", " ").title().replace(" ", "") + "Backward"

    def op(x, axis=-1):
        x, d, xp = _unary_input(x, name)
        if d.ndim == 0:
            raise ValueError(f"{name}: argument 'x' must have at least 1 dimension, got a scalar")
        ax = _axes(axis, d.ndim, name)[0]
        last = ax == d.ndim - 1
        m = d if last and (xp is not CPU or d.flags.c_contiguous) else xp.move_last(d, ax)
        y = xp.rows(name, m)
        out = y if last else xp.move_back(y, ax)
        noted = last and name == "softmax"  # for the categorical cross-entropies
        if not (_mode.enabled and x._rg):
            return _note_input(_wrap(out), name, x) if noted else _wrap(out)

        def backward(g):
            gm = xp.move_last(g, ax) if not last or (xp is CPU and not g.flags.c_contiguous) else g
            gx = xp.rows_backward(name, y, gm)
            return (gx if last else xp.move_back(gx, ax),)
        result = _record(out, (x,), backward, label)
        return _note_input(result, name, x) if noted else result
    op.__name__ = name
    op.__doc__ = doc
    return op


softmax = _row_op("softmax", "exp(x) / sum(exp(x)) along ``axis`` (default the last).")
log_softmax = _row_op("log_softmax", "log(softmax(x)) along ``axis``, computed stably.")


def dropout(x, rate, training=True):
    """Zeroes each element with probability ``rate`` and scales the others by
    1 / (1 - rate) while training; the identity otherwise. The mask comes from
    fastnn.manual_seed's stream and does not depend on the thread count (nor
    on the device)."""
    if (isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1
            or np.float32(rate) >= 1):  # the kernels take it as float32
        raise ValueError(f"dropout: argument 'rate' must be a number in [0, 1), got {rate!r}")
    x = _tensor(x, "dropout")
    if not training or rate == 0:
        return x
    x, d, xp = _unary_input(x, "dropout")
    key = _random.next_key()
    rate = float(rate)
    out = xp.dropout(d, rate, key)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,), lambda g: (xp.dropout(g, rate, key),), "DropoutBackward")


# ---------------------------------------------------------------- convolution and pooling
def _image_input(x, fn, name="x"):
    """x as a 4-D float32 tensor, its array as the kernels take it (C-contiguous
    float32 on the CPU), and the kernel module of its device."""
    x = _tensor(x, fn, name)
    d = x._data
    if type(d) is _ndarray:
        if d.dtype != np.float32 or not d.flags.c_contiguous:
            d = np.ascontiguousarray(d, dtype=np.float32)
        module = _K._C
    else:
        module = _cuda._C_cuda
    if name == "x" and d.ndim != 4:
        raise ValueError(f"{fn}: argument 'x' must be 4-D (N, H, W, C), got shape "
                         f"{tuple(d.shape)}")
    return x, d, module


def conv2d(x, w, b=None, stride=1, padding="valid", dilation=1, activation=None):
    """2-D convolution of NHWC images with an HWIO kernel (Keras's layouts):
    (N, H, W, C) * (KH, KW, C, F) -> (N, OH, OW, F), plus b (F,).
    padding: "valid", "same" (Keras's rule: output = ceil(input / stride)) or
    an int / (ph, pw); stride and dilation: an int or (sh, sw).
    activation="relu" fuses the ReLU into the kernel. Computes in float32."""
    relu = _K._check_activation(activation, "conv2d")
    x, dx, module = _image_input(x, "conv2d")
    w, dw, _ = _image_input(w, "conv2d", "w")
    b, db, _ = _image_input(b, "conv2d", "b") if b is not None else (None, None, None)
    xp = _xp("conv2d", x, w, b)
    window = _K._conv_window(stride, padding, dilation, "conv2d")
    out = module.conv2d(dx, dw, db, *window, relu)
    if not (_mode.enabled and (x._rg or w._rg or (b is not None and b._rg))):
        return _wrap(out)

    def backward(g):
        if xp is CPU:
            g = np.ascontiguousarray(g, dtype=np.float32)
        if relu:
            g = xp.activation_backward("relu", out, g)
        gx, gw, gb = module.conv2d_backward(dx, dw, g, *window, x._rg, w._rg,
                                            b is not None and b._rg)
        return (gx, gw) if b is None else (gx, gw, gb)
    return _record(out, (x, w) if b is None else (x, w, b), backward, "Conv2dBackward")


def _pool(name, doc):
    label = "".join(p.capitalize() for p in name.split("_")) + "Backward"

    def op(x, pool_size=2, strides=None, padding="valid"):
        x, d, module = _image_input(x, name)
        window = _K._pool_window(pool_size, strides, padding, name)
        out = getattr(module, name)(d, *window)
        if not (_mode.enabled and x._rg):
            return _wrap(out)

        def backward(g):
            if type(g) is _ndarray:
                g = np.ascontiguousarray(g, dtype=np.float32)
            return (getattr(module, name + "_backward")(d, g, *window),)
        return _record(out, (x,), backward, label)
    op.__name__ = name
    op.__doc__ = doc
    return op


max_pool2d = _pool("max_pool2d",
                   "The maximum over each window of NHWC images (strides default to the "
                   "pool size; padding 'valid' or 'same'); the gradient goes to each window's "
                   "first maximum.")
avg_pool2d = _pool("avg_pool2d",
                   "The mean over each window of NHWC images, counting only the real "
                   "(unpadded) cells, as Keras.")


# ---------------------------------------------------------------- losses
def _labels(labels, n, fn):
    d = labels._data if isinstance(labels, Tensor) else labels
    if _cuda.is_device_array(d):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array, got a float32 "
                        "DeviceArray")
    try:
        d = np.asarray(d)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array") from None
    if d.dtype.kind not in "iu":
        raise TypeError(f"{fn}: argument 'labels' must hold integers (int64, int32 or uint8), "
                        f"got dtype {d.dtype}")
    if d.shape != (n,):
        raise ValueError(f"{fn}: argument 'labels' must have shape ({n},) to match the logits, "
                         f"got {d.shape}")
    # a private copy: the backward must see the labels of the forward
    return np.array(d, dtype=np.int64, order="C")


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label]: logits (batch,
    classes), integer labels (batch,). Softmax and the loss are one fused
    kernel, exact for extreme logits."""
    x = _tensor(logits, "cross_entropy", "logits")
    xp = _xp("cross_entropy", x)
    d = x._data
    if d.dtype.kind in "iub":  # integer or bool logits compute in float32
        d = d.astype(np.float32)
    if d.ndim != 2:
        raise ValueError(f"cross_entropy: argument 'logits' must be 2-D (batch, classes), got "
                         f"shape {tuple(d.shape)}")
    lab = _labels(labels, d.shape[0], "cross_entropy")
    n = d.shape[0]
    out, prob = xp.cross_entropy(d, lab)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,),
                   lambda g: (xp.cross_entropy_backward(prob, lab, xp.to_float(g) / n if n else 0.0),),
                   "CrossEntropyBackward")


def mse_loss(y, t):
    """Mean of (y - t) ** 2 over all elements; y and t of one shape."""
    y = _tensor(y, "mse_loss", "y")
    t = _tensor(t, "mse_loss", "t")
    xp = _xp("mse_loss", y, t)
    dy, dt = y._data, t._data
    if tuple(dy.shape) != tuple(dt.shape):
        raise ValueError(f"mse_loss: arguments 'y' and 't' must have the same shape, got "
                         f"{tuple(dy.shape)} and {tuple(dt.shape)}")
    if xp is CPU and dy.dtype != dt.dtype:
        dy, dt = _common_float(dy, dt)
    diff = xp.sub(dy, dt)
    if diff.dtype.kind != "f":
        diff = diff.astype(np.float32)
    n = math.prod(diff.shape)
    out = xp.mul(xp.sum(xp.mul(diff, diff), tuple(range(diff.ndim)), False),
                 1.0 / n if n else float("nan"))
    if xp is CPU:
        out = np.asarray(out, diff.dtype)
    if not (_mode.enabled and (y._rg or t._rg)):
        return _wrap(out)

    def backward(g):
        gy = xp.mul(diff, 2.0 * xp.to_float(g) / n if n else 0.0)
        return (gy if y._rg else None, xp.neg(gy) if t._rg else None)
    return _record(out, (y, t), backward, "MseLossBackward")


# ---------------------------------------------------------------- Keras's probability losses
# Keras clips probabilities to [eps, 1 - eps] (its backend.epsilon()) before
# taking logarithms, so a probability of exactly 0 or 1 gives a finite loss
# and gradient.
EPSILON = 1e-7

# The input of each live softmax (over the last axis) and sigmoid output:
# a probability loss on such an output is computed from the logits instead,
# as Keras's TensorFlow backend does. That is exact for any logits, where
# log(clip(p)) flattens once p underflows and its gradient vanishes.
# id(output) -> (weak reference to the output, kind, input tensor); an
# entry goes when its output does.
_NOTED_INPUTS = {}


def _note_input(out, kind, x):
    key = id(out)
    ref = weakref.ref(out, lambda _, key=key: _NOTED_INPUTS.pop(key, None))
    _NOTED_INPUTS[key] = (ref, kind, x)
    return out


def _noted_input(p, kind):
    """The logits tensor p was computed from by `kind`, or None."""
    entry = _NOTED_INPUTS.get(id(p))
    if entry is not None and entry[0]() is p and entry[1] == kind:
        return entry[2]
    return None


def _same_shape(p, t, fn, p_name, t_name):
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"{fn}: arguments '{p_name}' and '{t_name}' must have the same shape, "
                         f"got {tuple(p.shape)} and {tuple(t.shape)}")


def _float_target(t, like, fn, name):
    """t as a tensor of like's float dtype, on like's device: targets that
    need no gradient (data) are converted and moved."""
    t = _tensor(t, fn, name)
    if t._rg or type(t._data) is not _ndarray:
        return t
    if t.dtype != like.dtype:
        t = _wrap(t._data.astype(like.dtype))
    return t if type(like._data) is _ndarray else t.to(like.device)


def _float_probs(p, fn, name):
    p = _tensor(p, fn, name)
    if p.dtype.kind != "f":
        p = _wrap(p._data.astype(np.float32))
    return p


def binary_cross_entropy(p, t, from_logits=False):
    """Mean over all elements of -(t log p + (1 - t) log(1 - p)): Keras's
    binary_crossentropy averaged over the batch. p: probabilities, clipped to
    [1e-7, 1 - 1e-7] first as Keras does (the gradient is 0 where the clip
    bites); t: targets in [0, 1] of p's shape. With from_logits, p are logits
    and the loss is max(p, 0) - p t + log(1 + exp(-|p|)), exact for any
    logits; the output of F.sigmoid is taken that way too, through its input
    (as Keras's TensorFlow backend does)."""
    fn = "binary_cross_entropy"
    p = _float_probs(p, fn, "p")
    t = _float_target(t, p, fn, "t")
    _same_shape(p, t, fn, "p", "t")
    if not from_logits:
        logits = _noted_input(p, "sigmoid")
        if logits is None:
            pc = clip(p, EPSILON, 1.0 - EPSILON)
            return neg(mean(add(mul(t, log(pc)), mul(sub(1.0, t), log(sub(1.0, pc))))))
        p = logits
    return _bce_with_logits(p, t, fn)


def _bce_with_logits(x, t, fn):
    xp = _xp(fn, x, t)
    dx, dt = x._data, t._data
    n = math.prod(dx.shape)
    # max(x, 0) - x t + log1p(exp(-|x|)): no exp overflows, no log(0)
    soft = xp.exp(xp.neg(xp.abs(dx)))
    soft = np.log1p(soft) if xp is CPU else xp.log(xp.add(soft, 1.0))
    terms = xp.add(xp.sub(xp.clip(dx, 0.0, None), xp.mul(dx, dt)), soft)
    out = xp.mul(xp.sum(terms, tuple(range(dx.ndim)), False), 1.0 / n if n else float("nan"))
    if xp is CPU:
        out = np.asarray(out, dx.dtype)
    if not (_mode.enabled and (x._rg or t._rg)):
        return _wrap(out)

    def backward(g):
        scale = xp.to_float(g) / n if n else 0.0
        gx = xp.mul(xp.sub(xp.activation("sigmoid", dx), dt), scale) if x._rg else None
        gt = xp.mul(dx, -scale) if t._rg else None
        return gx, gt
    return _record(out, (x, t), backward, "BinaryCrossEntropyBackward")


def _class_labels(labels, shape, fn):
    """Integer labels of shape ``shape`` (or with a trailing 1, as Keras
    accepts), flattened, as an int64 array in [0, classes)."""
    d = labels._data if isinstance(labels, Tensor) else labels
    if _cuda.is_device_array(d):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array on the host, got a "
                        "DeviceArray")
    try:
        d = np.asarray(d)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array") from None
    if d.dtype.kind not in "iu":
        raise TypeError(f"{fn}: argument 'labels' must hold integers (int64, int32 or uint8), "
                        f"got dtype {d.dtype}")
    lead, classes = tuple(shape[:-1]), shape[-1]
    if d.shape != lead and d.shape != lead + (1,):
        raise ValueError(f"{fn}: argument 'labels' must have shape {lead} to match the "
                         f"predictions of shape {tuple(shape)}, got {d.shape}")
    d = np.array(d.reshape(-1), dtype=np.int64)
    bad = (d < 0) | (d >= classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{fn}: argument 'labels' must hold class indices in [0, {classes}), "
                         f"got {d[i]} at position {i}")
    return d


def _class_probs(p, fn, name):
    p = _float_probs(p, fn, name)
    if p.ndim < 2:
        raise ValueError(f"{fn}: argument '{name}' must be at least 2-D (batch, classes), got "
                         f"shape {p.shape}")
    return p


def _rows(x):
    """x as (rows, classes)."""
    return x if x.ndim == 2 else reshape(x, (-1, x.shape[-1]))


def _clipped_log_probs(p):
    """log(clip(p / sum(p))) over the last axis: Keras renormalises the rows
    and clips to [eps, 1 - eps]."""
    q = div(p, sum(p, axis=-1, keepdims=True))
    return log(clip(q, EPSILON, 1.0 - EPSILON))


def sparse_categorical_crossentropy(probs, labels, from_logits=False):
    """Mean over the batch of -log probs[label]: Keras's
    sparse_categorical_crossentropy. probs: (..., classes) probabilities,
    each row renormalised to sum 1 and clipped to [1e-7, 1 - 1e-7] as Keras
    does; labels: integer class indices of shape (...). With from_logits,
    probs are logits: the fused softmax + cross-entropy of F.cross_entropy.
    The output of F.softmax (over the last axis) is taken as its logits too,
    as Keras's TensorFlow backend does, so the loss is exact for any logits."""
    fn = "sparse_categorical_crossentropy"
    p = _class_probs(probs, fn, "probs")
    lab = _class_labels(labels, p.shape, fn)
    logits = p if from_logits else _noted_input(p, "softmax")
    if logits is not None:
        return cross_entropy(_rows(logits), lab)
    xp = _xp(fn, p)
    onehot = np.zeros((lab.size, p.shape[-1]), p.dtype)
    onehot[np.arange(lab.size), lab] = 1
    t = _wrap(onehot if xp is CPU else _cuda.to_device(onehot))
    return neg(mean(sum(mul(t, _clipped_log_probs(_rows(p))), axis=-1)))


def categorical_crossentropy(probs, onehot, from_logits=False):
    """Mean over the batch of -sum(onehot * log probs) over the classes:
    Keras's categorical_crossentropy. probs: (..., classes) probabilities,
    each row renormalised to sum 1 and clipped to [1e-7, 1 - 1e-7] as Keras
    does; onehot: targets of the same shape (one-hot or soft). With
    from_logits, probs are logits and log_softmax is used (exact for any
    logits); so is the input of an F.softmax output (over the last axis), as
    Keras's TensorFlow backend does."""
    fn = "categorical_crossentropy"
    p = _class_probs(probs, fn, "probs")
    t = _float_target(onehot, p, fn, "onehot")
    _same_shape(p, t, fn, "probs", "onehot")
    logits = p if from_logits else _noted_input(p, "softmax")
    logp = log_softmax(logits, axis=-1) if logits is not None else _clipped_log_probs(p)
    return neg(mean(sum(mul(t, logp), axis=-1)))


# ---------------------------------------------------------------- Tensor methods
def _install():
    T = Tensor
    T.__add__ = add
    T.__radd__ = add
    T.__sub__ = sub
    T.__rsub__ = _rsub
    T.__mul__ = mul
    T.__rmul__ = mul
    T.__truediv__ = div
    T.__rtruediv__ = _rdiv
    T.__pow__ = pow
    T.__rpow__ = _rpow
    T.__matmul__ = matmul
    T.__rmatmul__ = _rmatmul
    T.__neg__ = neg
    T.__getitem__ = getitem
    T.sum = sum
    T.mean = mean
    T.max = max
    T.reshape = reshape
    T.view = reshape
    T.transpose = transpose
    T.permute = permute
    T.T = property(lambda self: transpose(self))
    T.exp = exp
    T.log = log
    T.sqrt = sqrt
    T.clip = clip
    T.abs = abs
    T.__abs__ = abs
    T.min = min
    T.argmax = argmax
    T.relu = relu
    T.sigmoid = sigmoid
    T.tanh = tanh
    T.softmax = softmax
    T.log_softmax = log_softmax
    T.matmul = matmul
    T.flatten = lambda self: reshape(self, -1)

    def _compare(op):
        def f(self, other):
            _cpu_only("comparison", self, other if isinstance(other, Tensor) else None)
            o = other._data if isinstance(other, Tensor) else other
            return _wrap(np.asarray(op(self._data, o)))
        return f
    T.__eq__ = _compare(np.equal)
    T.__ne__ = _compare(np.not_equal)
    T.__hash__ = object.__hash__  # tensors hash by identity (defining __eq__ removes it)
    T.__lt__ = _compare(np.less)
    T.__le__ = _compare(np.less_equal)
    T.__gt__ = _compare(np.greater)
    T.__ge__ = _compare(np.greater_equal)


_install()


# ---------------------------------------------------------------- recurrent layers (_rnn.py)
from ._rnn import gru, gru_cell, lstm, lstm_cell  # noqa: E402  (they build on the helpers above)

__all__ += ["gru", "gru_cell", "lstm", "lstm_cell"]

"""What every op module of the package shares: recording a node, turning
arguments into tensors, picking the array namespace of the tensors' device
(``fastnn._backend``), broadcasting helpers."""
import numbers

import numpy as np

from .._backend import CPU, GPU
from ..autograd import Node, _mode
from ..tensor import Tensor, _as_array, _wrap

_ndarray = np.ndarray


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
        da, db = CPU.promote(da, db)
        return ta, da, tb, db, CPU
    return ta, da, tb, db, GPU


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
    return ta, da, tb, db, xp, xp.binary_result(out, da, db)


def _needs(ta, tb):
    return _mode.enabled and ((ta is not None and ta._rg) or (tb is not None and tb._rg))


def _inputs(ta, tb):
    return tuple(t for t in (ta, tb) if t is not None)


def _grads(ta, tb, ga, gb):
    """Gradients in the order of the recorded inputs (only the tensors)."""
    if ta is None:
        return (gb,)
    if tb is None:
        return (ga,)
    return ga, gb


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

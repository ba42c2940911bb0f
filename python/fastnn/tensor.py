"""``fastnn.Tensor``: a NumPy array (or, on a GPU, a ``DeviceArray``) with
the autograd bookkeeping. The differentiable operators and methods are
installed by ``fastnn.functional``; what is here needs no graph. Device
work goes through ``fastnn._backend``."""
import math
import numbers

import numpy as np

from . import _backend
from . import autograd
from . import cuda as _cuda

_new = object.__new__


def _wrap(data, requires_grad=False, node=None, index=0, ver=None):
    """A Tensor around ``data`` without checks or copies (internal). A NumPy
    scalar (what ufuncs return for 0-d inputs) becomes a 0-d array. ``ver``:
    the version cell of the tensor whose memory ``data`` shares (a view)."""
    if isinstance(data, np.generic):
        data = np.asarray(data)
    t = _new(Tensor)
    t._data = data
    t._rg = requires_grad
    t.grad = None
    t._node = node
    t._index = index
    t._ver = [0] if ver is None else ver
    return t



def _as_array(data, dtype, fn, name="data"):
    """data as an ndarray: floats become float32 unless ``dtype`` says otherwise,
    integers int64, bools stay bools. An ndarray already in that dtype is not copied."""
    if isinstance(data, Tensor):
        data = data._data
    if _cuda.is_device_array(data):
        return data
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: argument '{name}' must be an array of numbers ({e})") from None
    if dtype is not None:
        want = np.dtype(dtype)
    elif arr.dtype.kind == "f":
        want = np.dtype(np.float32)
    elif arr.dtype.kind in "iu":
        want = np.dtype(np.int64)
    elif arr.dtype.kind == "b":
        want = arr.dtype
    else:
        raise TypeError(f"{fn}: argument '{name}' must hold numbers, got dtype {arr.dtype}")
    if want.kind not in "fiub":
        raise TypeError(f"{fn}: argument 'dtype' must be a number type, got {want}")
    if arr.dtype != want or not arr.dtype.isnative:
        arr = arr.astype(want.newbyteorder("="))
    return arr


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


def tensor(data, requires_grad=False, device=None, dtype=None):
    """A Tensor over ``data``. A NumPy array that is already float32 (or
    int64) is wrapped without copying; other floats become float32, other
    integers int64, unless ``dtype`` is given (float64 is allowed, for
    precise gradient checks)."""
    t = _wrap(_as_array(data, dtype, "tensor"))
    if device is not None:
        t = t.to(device)
    t.requires_grad = requires_grad
    return t


def _parse_device(device, fn="to"):
    if isinstance(device, str):
        d = device.strip().lower()
        if d == "cpu":
            return "cpu"
        if d == "cuda" or d.startswith("cuda:"):
            if d not in ("cuda", "cuda:0") and not d[5:].isdigit():
                raise ValueError(f"{fn}: argument 'device' must be 'cpu' or 'cuda[:n]', got {device!r}")
            return d
    raise ValueError(f"{fn}: argument 'device' must be 'cpu' or 'cuda[:n]', got {device!r}")


class Tensor:
    """An n-dimensional array with reverse-mode autograd.

    Create one with ``fastnn.tensor(data, requires_grad=False)``. Operators
    ``+ - * / ** @``, unary ``-``, indexing and the methods below record the
    graph when an input requires a gradient; ``backward()`` fills ``.grad``
    of the leaves.
    """
    # _ver: [number of in-place changes], one list shared by a tensor and
    # its views, checked by backward (autograd.Node)
    # _made_by: (kind, input) on the output of softmax and sigmoid, so that a
    # probability loss can work from the logits (functional/losses.py)
    __slots__ = ("_data", "_rg", "grad", "_node", "_index", "_ver", "_made_by", "__weakref__")
    # NumPy defers to our reflected operators (ndarray + Tensor -> Tensor)
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _as_array(data, dtype, "Tensor")
        self._rg = False
        self.grad = None
        self._node = None
        self._index = 0
        self._ver = [0]
        self.requires_grad = requires_grad

    # the graph makes gradients with this (autograd knows no Tensor)
    _from_array = staticmethod(_wrap)

    # ------------------------------------------------------------ properties
    @property
    def shape(self):
        return tuple(self._data.shape)

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return math.prod(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        """"cpu", "cuda" (GPU 0) or "cuda:N"."""
        if isinstance(self._data, np.ndarray):
            return "cpu"
        index = getattr(self._data, "device", 0)
        return "cuda" if not isinstance(index, int) or index == 0 else f"cuda:{index}"

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def data(self):
        """The same values as a Tensor outside the graph (shares memory)."""
        return _wrap(self._data, ver=self._ver)

    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if value and self._data.dtype.kind != "f":
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, got dtype "
                f"{self._data.dtype}")
        if not value and self._node is not None:
            raise RuntimeError(
                "requires_grad: a tensor computed by an op always requires grad; use .detach()")
        self._rg = value

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __repr__(self):
        extra = ""
        if self.device != "cpu":
            extra += ", device='cuda'"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.name}>"
        elif self._rg:
            extra += ", requires_grad=True"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}{extra})"

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    def __hash__(self):
        return id(self)

    # ------------------------------------------------------------ conversion
    def numpy(self):
        """The values as a NumPy array: the tensor's own memory on the CPU
        (no copy), a host copy for a GPU tensor."""
        if isinstance(self._data, np.ndarray):
            return self._data
        return self._data.numpy()

    def __array__(self, dtype=None, copy=None):
        """np.asarray(t) shares the tensor's memory; np.array(t) copies it."""
        arr = self.numpy()
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            if copy is False:
                raise ValueError(f"cannot convert a {arr.dtype} tensor to {dtype} without a copy")
            return arr.astype(dtype)
        if copy:
            return arr.copy()
        if copy is False and not isinstance(self._data, np.ndarray):
            raise ValueError("a GPU tensor cannot be seen as a NumPy array without a copy")
        return arr

    def item(self):
        """The one value of a 1-element tensor as a Python number."""
        arr = self.numpy()
        if arr.size != 1:
            raise ValueError(f"item: the tensor must have exactly one element, got shape {arr.shape}")
        return arr.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same values (same memory) outside the graph."""
        return _wrap(self._data, ver=self._ver)

    def to(self, device):
        """This tensor on ``device`` ("cpu" or "cuda"); itself when already there.
        The copy is a leaf of the graph with the same requires_grad."""
        d = _parse_device(device)
        if d == self.device or (d == "cuda" and self.device.startswith("cuda")):
            return self
        if d == "cpu":
            out = _wrap(self._data.numpy())
        else:
            if self._data.dtype != np.float32:
                raise TypeError(f"to: only float32 tensors can move to the GPU, got {self.dtype}")
            if not _cuda.is_available():
                _cuda._require_gpu("Tensor.to")
            GPU = _backend.GPU
            index = int(d[5:]) if d.startswith("cuda:") else GPU.current_device()
            if not 0 <= index < _cuda.device_count():
                raise ValueError(f"to: argument 'device' names GPU {index}, but "
                                 f"{_cuda.device_count()} GPU(s) are present")
            data = self._data if isinstance(self._data, np.ndarray) else self._data.numpy()
            out = _wrap(GPU.upload(data, index))
        out._rg = self._rg
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    # ------------------------------------------------------------ autograd
    def backward(self, grad=None, retain_graph=False):
        """Accumulates the gradient of this tensor into ``.grad`` of the leaves
        it depends on. ``grad`` (of this tensor's shape) is needed unless the
        tensor has one element."""
        if self._data.dtype.kind != "f":
            raise TypeError(f"backward: cannot differentiate a tensor of dtype {self.dtype}")
        if not self._rg:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no graph (no input "
                "requires_grad=True, or it was computed under no_grad())")
        shape = tuple(self._data.shape)
        if grad is None:
            if math.prod(shape) != 1:
                raise ValueError(
                    f"backward: argument 'grad' is needed for a non-scalar output of shape {shape}")
            g = np.ones(shape, dtype=self._data.dtype)
            if not isinstance(self._data, np.ndarray):
                g = _cuda.to_device(g)
        else:
            g = grad._data if isinstance(grad, Tensor) else grad
            if _cuda.is_device_array(g) != (not isinstance(self._data, np.ndarray)):
                raise ValueError(
                    f"backward: argument 'grad' is on {'cuda' if _cuda.is_device_array(g) else 'cpu'} "
                    f"but the output is on {self.device}")
            if isinstance(g, np.ndarray) or not _cuda.is_device_array(g):
                try:
                    g = np.array(g, dtype=self._data.dtype)  # a private copy
                except (TypeError, ValueError) as e:
                    raise TypeError(f"backward: argument 'grad' must be an array of numbers ({e})") from None
            if tuple(g.shape) != shape:
                raise ValueError(
                    f"backward: argument 'grad' must have the output's shape {shape}, got "
                    f"{tuple(g.shape)}")
        autograd.run_backward(self, g, retain_graph)

    def zero_grad(self):
        self.grad = None

    # ------------------------------------------------------------ in place
    # In-place ops write into this tensor's memory (so views and .data see
    # the change) and bump its version: backward then refuses to use a value
    # that changed after an op saved it.
    def _check_inplace(self, fn):
        if self._rg and autograd._mode.enabled:
            raise RuntimeError(
                f"{fn}: a tensor that requires grad cannot be changed in place while grad is "
                "recorded; do it inside fastnn.no_grad()")

    def _other_array(self, other, fn):
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise ValueError(f"{fn}: all tensors must be on the same device, got "
                                 f"{self.device} and {other.device}")
            return other._data
        if isinstance(other, numbers.Number):
            return other
        if not isinstance(self._data, np.ndarray):
            raise ValueError(f"{fn}: all tensors must be on the same device, got cuda and a "
                             "host array")
        return np.asarray(other)

    def _store(self, fn, value):
        """Writes value (an array or number broadcast to this shape) into this
        tensor's memory."""
        a = self._data
        try:
            _backend.of(a).store(a, value)
        except ValueError:
            raise ValueError(f"{fn}: a value of shape {np.shape(value)} does not fit a tensor "
                             f"of shape {tuple(a.shape)}") from None
        self._ver[0] += 1

    def add_(self, other, alpha=1.0):
        """self += alpha * other, in place (a fused kernel for float32 arrays of one shape)."""
        self._check_inplace("add_")
        o = self._other_array(other, "add_")
        a = self._data
        xp = _backend.of(a)
        if xp.can_axpy(a, o):  # one fused kernel for arrays of one shape
            xp.axpy(float(alpha), o, a)
            self._ver[0] += 1
        else:
            if isinstance(o, numbers.Number):
                term = o * alpha
            else:
                term = o if alpha == 1 else xp.mul(o, float(alpha))
            self._store("add_", xp.add(a, term))
        return self

    def sub_(self, other, alpha=1.0):
        return self.add_(other, -alpha)

    def mul_(self, other):
        self._check_inplace("mul_")
        o = self._other_array(other, "mul_")
        self._store("mul_", _backend.of(self._data).mul(self._data, o))
        return self

    def div_(self, other):
        self._check_inplace("div_")
        o = self._other_array(other, "div_")
        self._store("div_", _backend.of(self._data).div(self._data, o))
        return self

    def zero_(self):
        return self.fill_(0.0)

    def fill_(self, value):
        self._check_inplace("fill_")
        if not isinstance(value, numbers.Number):
            raise TypeError(f"fill_: argument 'value' must be a number, got {type(value).__name__}")
        self._store("fill_", value)
        return self

    def copy_(self, src):
        """Copies src's values (broadcast to this shape) into this tensor."""
        self._check_inplace("copy_")
        self._store("copy_", self._other_array(src, "copy_"))
        return self

    def __setitem__(self, idx, value):
        """x[idx] = value in place (NumPy's indexing rules), CPU tensors."""
        self._check_inplace("__setitem__")
        if not isinstance(self._data, np.ndarray):
            raise NotImplementedError("__setitem__: not available for GPU tensors yet")
        idx, _ = _index_arrays(idx)
        self._data[idx] = self._other_array(value, "__setitem__")
        self._ver[0] += 1

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.add_(other, -1.0)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

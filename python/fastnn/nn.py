"""Keras-style layers on a PyTorch-style ``Module`` (``import fastnn.nn as nn``).

A ``Module`` registers what is assigned to its attributes: another Module
becomes a child, a leaf Tensor that requires grad a parameter, and a Tensor
given to ``register_buffer`` non-trainable state (BatchNormalization's moving
statistics). ``parameters()``, ``state_dict()``, ``train()``/``eval()`` and
``to(device)`` walk that tree.

The layers take Keras's names and arguments and Keras's weight layouts
(docs/api.md). Their weights are created on the first call, their shapes inferred
from the input (or at construction when ``input_shape`` is given), drawn from
``fastnn.manual_seed``'s stream with Keras's default initialisers: Glorot
uniform kernels, zero biases. Layers start in training mode, as PyTorch
modules do: ``eval()`` switches Dropout off and makes BatchNormalization use
its moving statistics.
"""
import functools
import inspect
import math
import numbers

import numpy as np

from . import _random
from . import cuda as _cuda
from . import functional as F
from . import regularizers
from .autograd import no_grad
from .tensor import Tensor, _parse_device, tensor

__all__ = [
    "Activation", "AveragePooling2D", "BatchNormalization", "Bidirectional", "Conv2D", "Dense",
    "Dropout", "Embedding", "Flatten", "GRU", "LSTM", "Layer", "MaxPooling2D", "Module",
    "ModuleList", "Sequential", "get_activation",
]


# ---------------------------------------------------------------- Module
class Module:
    """Base class of layers and models: subclasses set their parameters and
    sub-modules as attributes in ``__init__`` (after ``super().__init__()``)
    and compute in ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __call__(self, *args, training=None, **kwargs):
        """forward(*args); ``training=True/False`` (as in Keras) sets the mode of
        this module and its children for this call only."""
        if training is None:
            return self.forward(*args, **kwargs)
        previous = [(m, m.training) for m in self.modules()]
        self.train(bool(training))
        try:
            return self.forward(*args, **kwargs)
        finally:
            for m, mode in previous:
                object.__setattr__(m, "training", mode)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        registries = self.__dict__.get("_parameters"), self.__dict__.get("_buffers"), \
            self.__dict__.get("_modules")
        params, buffers, modules = registries
        if params is None:
            if isinstance(value, (Module, Tensor)):
                raise AttributeError(
                    f"{type(self).__name__}: call super().__init__() before assigning "
                    f"{name!r} (a {type(value).__name__})")
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Tensor) and name in buffers:
            buffers[name] = value
            return
        for registry in registries:
            registry.pop(name, None)
        if isinstance(value, Module):
            self.__dict__.pop(name, None)
            modules[name] = value
        elif isinstance(value, Tensor) and value.requires_grad and value.is_leaf:
            self.__dict__.pop(name, None)
            params[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # only reached when normal lookup fails: the registered entries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = d.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                del entries[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, value):
        """Registers ``value`` (a Tensor) as non-trainable state: it is in
        ``state_dict()`` and moves with ``to()``, but not in ``parameters()``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before register_buffer")
        if not isinstance(value, Tensor):
            raise TypeError(f"register_buffer: argument 'value' must be a Tensor, got "
                            f"{type(value).__name__}")
        for registry in (self._parameters, self._modules):
            registry.pop(name, None)
        self.__dict__.pop(name, None)
        self._buffers[name] = value

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix=""):
        """[(dotted name, module)] for this module ("") and every module below
        it, depth first in registration order; a module reached twice is
        listed once."""
        out, seen = [], set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            out.append((name, m))
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))
        return out

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return list(self._modules.values())

    def _named_tensors(self, kind):
        out, seen = [], set()
        for prefix, m in self.named_modules():
            for k, t in getattr(m, kind).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                out.append((f"{prefix}.{k}" if prefix else k, t))
        return out

    def named_parameters(self):
        """[(dotted name, tensor)] of the trainable weights: "kernel", "bias"
        for a layer, "0.kernel", "0.bias", ... in a container. Each tensor
        once, in registration order (a module's own before its children's)."""
        return self._named_tensors("_parameters")

    def parameters(self):
        """The trainable weights (leaf tensors with requires_grad), each once,
        in the order of ``named_parameters()``. Layers create theirs on the
        first call, so a model has none before it has seen an input."""
        return [t for _, t in self.named_parameters()]

    def named_buffers(self):
        return self._named_tensors("_buffers")

    def buffers(self):
        return [t for _, t in self.named_buffers()]

    # ------------------------------------------------------------ modes
    def train(self, mode=True):
        """Training mode (the default) for this module and all below it."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Inference mode: Dropout is the identity, BatchNormalization uses its
        moving statistics."""
        return self.train(False)

    def zero_grad(self):
        """Clears ``.grad`` of every parameter."""
        for p in self.parameters():
            p.grad = None

    # ------------------------------------------------------------ state
    def _state_entries(self):
        """[(dotted name, owning module, attribute, tensor)]: parameters and
        buffers of each module, module by module."""
        out, seen = [], set()
        for prefix, m in self.named_modules():
            for kind in ("_parameters", "_buffers"):
                for k, t in getattr(m, kind).items():
                    if t is None or id(t) in seen:
                        continue
                    seen.add(id(t))
                    out.append((f"{prefix}.{k}" if prefix else k, m, kind, k, t))
        return out

    def state_dict(self):
        """{dotted name: NumPy copy} of every parameter and buffer (moving
        statistics included), in the order of ``named_parameters()`` per module."""
        return {name: np.array(t.numpy(), copy=True) for name, _, _, _, t in self._state_entries()}

    def load_state_dict(self, state_dict):
        """Copies the arrays of ``state_dict`` into the existing parameters and
        buffers, in place (tensors keep their identity, so an optimizer holding
        them sees the new values). The names and shapes must match exactly;
        otherwise a ValueError names the offending keys and shapes and nothing
        is changed. Build the model (call it once) before loading into it."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"load_state_dict: argument 'state_dict' must be a dict of arrays, "
                            f"got {type(state_dict).__name__}")
        entries = self._state_entries()
        own = {name: t for name, _, _, _, t in entries}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            hint = ""
            if not own:
                hint = " (this model has no weights yet: call it once on an input to build them)"
            raise ValueError(f"load_state_dict: keys do not match; missing {missing}, "
                             f"unexpected {unexpected}{hint}")
        arrays = {}
        for name, t in own.items():
            value = state_dict[name]
            try:
                arr = np.asarray(value)
            except (TypeError, ValueError) as e:
                raise TypeError(f"load_state_dict: entry {name!r} must be an array of numbers "
                                f"({e})") from None
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: entry {name!r} must hold numbers, got dtype "
                                f"{arr.dtype}")
            if tuple(arr.shape) != t.shape:
                raise ValueError(f"load_state_dict: entry {name!r} has shape {tuple(arr.shape)}, "
                                 f"expected {t.shape}")
            arrays[name] = arr
        with no_grad():
            for name, t in own.items():
                src = tensor(np.array(arrays[name], dtype=t.dtype, copy=True))
                if t.device != "cpu":
                    src = src.to(t.device)
                t.copy_(src)
        return self

    def to(self, device):
        """Moves every parameter and buffer (and gradient) to ``device``; the
        moved parameters are new leaf tensors with the same requires_grad,
        registered in place of the old ones. Weights built later are created
        on ``device`` too. Returns self."""
        device = _parse_device(device, "Module.to")
        if device != "cpu" and not _cuda.is_available():
            _cuda._require_gpu("Module.to")
        for m in self.modules():
            object.__setattr__(m, "_device", device)
            for kind in ("_parameters", "_buffers"):
                entries = getattr(m, kind)
                for k, t in list(entries.items()):
                    if t is None:
                        continue
                    moved = t.to(device)
                    if moved is not t and t.grad is not None:
                        moved.grad = t.grad.to(device)
                    entries[k] = moved
        return self

    # ------------------------------------------------------------ regularization
    def regularization_losses(self):
        """[regularizer(kernel)] for each layer here that has a
        ``kernel_regularizer`` and a built kernel: scalar tensors to add to
        the loss, as Keras adds ``model.losses``."""
        out = []
        for m in self.modules():
            reg = m.__dict__.get("kernel_regularizer")
            kernel = m._parameters.get("kernel")
            if reg is not None and kernel is not None:
                out.append(reg(kernel))
        return out

    def regularization_loss(self):
        """The sum of ``regularization_losses()``, the term Keras adds to the
        training loss (a 0-d tensor on the weights' device; 0 when there is none)."""
        losses = self.regularization_losses()
        if not losses:
            params = self.parameters()
            zero = tensor(np.zeros((), np.float32))
            return zero.to(params[0].device) if params else zero
        total = losses[0]
        for term in losses[1:]:
            total = total + term
        return total

    # ------------------------------------------------------------ repr
    def extra_repr(self):
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for k, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({k}): {body}")
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------- containers
class Sequential(Module):
    """Runs its layers in order: ``Sequential([Dense(64, activation="relu"),
    Dense(10)])``; ``add(layer)``, ``model[i]``, ``len(model)``. Children are
    named "0", "1", ... (so weights are "0.kernel", "0.bias", ...)."""

    def __init__(self, layers=None):
        super().__init__()
        if layers is None:
            layers = []
        if isinstance(layers, Module) or not isinstance(layers, (list, tuple)):
            raise TypeError(f"Sequential: argument 'layers' must be a list of layers, got "
                            f"{type(layers).__name__}")
        for layer in layers:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, Module):
            raise TypeError(f"{type(self).__name__}.add: argument 'layer' must be a Module, got "
                            f"{type(layer).__name__}")
        self._modules[str(len(self._modules))] = layer
        return self

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    @property
    def layers(self):
        return list(self._modules.values())

    def __getitem__(self, index):
        layers = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(layers[index])
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: indices must be ints or slices, got "
                            f"{type(index).__name__}")
        if not -len(layers) <= index < len(layers):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for "
                             f"{len(layers)} layers")
        return layers[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))


class ModuleList(Module):
    """A list of modules registered as children "0", "1", ... (no forward)."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: argument 'module' must be a Module, got "
                            f"{type(module).__name__}")
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))


# ---------------------------------------------------------------- activations
def _linear(x):
    return x


_ACTIVATIONS = {
    "relu": F.relu,
    "sigmoid": F.sigmoid,
    "tanh": F.tanh,
    "softmax": lambda x: F.softmax(x, axis=-1),
    "linear": _linear,
}


def get_activation(activation):
    """The function for an activation name ("relu", "sigmoid", "tanh",
    "softmax", "linear"; None is "linear") or the callable itself."""
    if activation is None:
        return _linear
    if isinstance(activation, str):
        fn = _ACTIVATIONS.get(activation.lower())
        if fn is None:
            raise ValueError(f"activation: unknown name {activation!r}; valid names are "
                             f"{sorted(_ACTIVATIONS)}")
        return fn
    if callable(activation):
        return activation
    raise TypeError(f"activation: argument must be a name or a callable, got "
                    f"{type(activation).__name__}")


def _activation_name(activation):
    if activation is None or isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", repr(activation))


# ---------------------------------------------------------------- layers
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Layer(Module):
    """A module with Keras-style lazy weights: ``build(input_shape)`` creates
    them on the first call. ``input_shape`` (without the batch axis) builds
    them at construction and fixes the shape later inputs must have.
    ``dtype`` is the weights' dtype: float32, or float64 for precise checks."""

    def __init_subclass__(cls, **kwargs):
        # Records the arguments of the outermost constructor call, so that
        # get_config() can rebuild the layer (model.save / load_model).
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_init_args" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                arguments = dict(bound.arguments)
                arguments.pop("self", None)
                for name, p in signature.parameters.items():
                    if p.kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(arguments.pop(name, {}))
                    elif p.kind is inspect.Parameter.VAR_POSITIONAL:
                        arguments.pop(name, None)
                object.__setattr__(self, "_init_args", arguments)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def get_config(self):
        """{"class_name", "config"}: the constructor arguments this layer was
        made with, as JSON values (layers inside it as nested configs)."""
        def value(v, name):
            if v is None or isinstance(v, (bool, str)):
                return v
            if isinstance(v, numbers.Integral):
                return int(v)
            if isinstance(v, numbers.Real):
                return float(v)
            if isinstance(v, (tuple, list)):
                return [value(e, name) for e in v]
            if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
                return np.dtype(v).name
            named = [k for k, f in _ACTIVATIONS.items() if f is v]
            if named:
                return named[0]
            if hasattr(v, "get_config"):
                return {"class_name": type(v).__name__, "config": v.get_config()}
            raise TypeError(f"{type(self).__name__}.get_config: argument {name!r} is a "
                            f"{type(v).__name__}, which cannot be saved; pass a name "
                            f"(e.g. activation=\"relu\") to make the layer saveable")
        config = self.__dict__.get("_init_args", {})
        return {"class_name": type(self).__name__,
                "config": {k: value(v, k) for k, v in config.items()}}

    def __init__(self, input_shape=None, dtype=None):
        super().__init__()
        dt = np.dtype(np.float32 if dtype is None else dtype)
        if dt not in _FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}: argument 'dtype' must be float32 or float64, "
                            f"got {dt}")
        self.dtype = dt
        self.built = False
        if input_shape is not None:
            if isinstance(input_shape, numbers.Integral):
                input_shape = (input_shape,)
            input_shape = tuple(None if s is None else int(s) for s in input_shape)
        self._input_shape = input_shape

    def _build_from_argument(self):
        """Builds now when ``input_shape`` was given (call at the end of __init__)."""
        if self._input_shape is not None:
            self._check_rank((None,) + self._input_shape)
            self.build((None,) + self._input_shape)
            self.built = True

    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch axis first)."""

    def _check_rank(self, shape):
        """ValueError unless an input of ``shape`` fits this layer."""

    def _check_built(self, shape):
        """ValueError unless an input of ``shape`` fits the built weights."""

    def _prepare(self, x):
        """x as a float Tensor, checked against the layer; builds the weights on
        the first call."""
        if not isinstance(x, Tensor):
            x = tensor(x)
        if x.dtype.kind != "f":
            x = tensor(x.numpy().astype(self.dtype))
        shape = x.shape
        self._check_rank(shape)
        if self._input_shape is not None:
            want = self._input_shape
            if len(shape) != len(want) + 1 or any(
                    w is not None and w != s for w, s in zip(want, shape[1:])):
                raise ValueError(f"{type(self).__name__}: expected input of shape "
                                 f"{_fmt((None,) + want)}, got {shape}")
        if not self.built:
            self._build_device = x.device
            self.build(shape)
            self.built = True
        else:
            self._check_built(shape)
        return x

    def _weight(self, name, shape, init, trainable=True, fan=None):
        """Creates and registers a weight of the layer's dtype: init "zeros",
        "ones", "glorot_uniform" (fan = (fan_in, fan_out)), "orthogonal"
        (Keras's Orthogonal: orthonormal rows or columns, whichever fit) or
        "uniform" (Keras's RandomUniform(-0.05, 0.05)); or an array of the
        shape, used as it is."""
        if any(s is None for s in shape):
            raise ValueError(f"{type(self).__name__}: cannot create '{name}' of shape "
                             f"{_fmt(shape)}: input_shape {_fmt(self._input_shape or ())} leaves "
                             "a size it depends on unknown")
        shape = tuple(int(s) for s in shape)
        if isinstance(init, np.ndarray):
            arr = init.astype(self.dtype)
        elif init == "zeros":
            arr = np.zeros(shape, self.dtype)
        elif init == "ones":
            arr = np.ones(shape, self.dtype)
        elif init == "orthogonal":
            arr = _orthogonal(shape).astype(self.dtype)
        elif init == "uniform":
            arr = _random.generator().uniform(-0.05, 0.05, size=shape).astype(self.dtype)
        else:
            fan_in, fan_out = fan
            limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
            arr = _random.generator().uniform(-limit, limit, size=shape).astype(self.dtype)
        t = tensor(arr, dtype=self.dtype)
        # on the device given to to(), else on the first input's
        device = self.__dict__.get("_device") or self.__dict__.get("_build_device")
        if device is not None and device != "cpu":
            t = t.to(device)
        if trainable:
            t.requires_grad = True
            setattr(self, name, t)
        else:
            self.register_buffer(name, t)
        return t


def _orthogonal(shape):
    """Keras's Orthogonal initializer (gain 1) for a 2-D shape: the Q of a
    Gaussian matrix's QR decomposition, signs fixed by R's diagonal, so the
    rows (when fewer) or the columns are orthonormal."""
    rows, cols = shape
    a = _random.generator().standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    return np.ascontiguousarray(q.T if rows < cols else q)


def _fmt(shape):
    """A shape with None for unknown sizes, as Keras prints it."""
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _pair(value, name, fn, allow_zero=False):
    """An int or a pair of ints as a pair of positive ints."""
    if isinstance(value, (tuple, list)):
        items = tuple(value)
    else:
        items = (value, value)
    low = 0 if allow_zero else 1
    if len(items) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < low for v in items):
        raise ValueError(f"{fn}: argument '{name}' must be a positive int or a pair of them, "
                         f"got {value!r}")
    return tuple(int(v) for v in items)


def _compact(pair):
    """(a, a) as a, the form the functional ops take most directly."""
    return pair[0] if pair[0] == pair[1] else pair


def _padding(padding, fn, allow_numbers=False):
    if isinstance(padding, str):
        p = padding.lower()
        if p in ("valid", "same"):
            return p
    elif allow_numbers and (isinstance(padding, (int, np.integer, tuple, list))
                            and not isinstance(padding, bool)):
        return _pair(padding, "padding", fn, allow_zero=True)
    valid = "'valid', 'same', an int or (ph, pw)" if allow_numbers else "'valid' or 'same'"
    raise ValueError(f"{fn}: argument 'padding' must be {valid}, got {padding!r}")


def _positive_int(value, name, fn):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{fn}: argument '{name}' must be a positive int, got {value!r}")
    return int(value)


class Dense(Layer):
    """y = activation(x @ kernel + bias): kernel (in, units), bias (units,).
    x may have leading axes: (..., in) -> (..., units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_regularizer=None,
                 input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        self.units = _positive_int(units, "units", "Dense")
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel = None
        self.bias = None
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) < 1:
            raise ValueError(f"Dense: expected an input of shape (..., features), got a "
                             f"scalar of shape {shape}")

    def build(self, input_shape):
        n_in = input_shape[-1]
        self._weight("kernel", (n_in, self.units), "glorot_uniform", fan=(n_in, self.units))
        if self.use_bias:
            self._weight("bias", (self.units,), "zeros")

    def _check_built(self, shape):
        n_in = self.kernel.shape[0]
        if shape[-1] != n_in:
            raise ValueError(f"Dense: expected an input of shape (..., {n_in}) (the layer was "
                             f"built for {n_in} input features), got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        return self._act(F.linear(x, self.kernel, self.bias))

    def extra_repr(self):
        s = f"units={self.units}"
        if self.activation is not None:
            s += f", activation={_activation_name(self.activation)!r}"
        if not self.use_bias:
            s += ", use_bias=False"
        return s


class Conv2D(Layer):
    """2-D convolution of NHWC images: kernel (kh, kw, in, filters) (HWIO),
    bias (filters,); padding "valid" or "same" (Keras's rule)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 use_bias=True, dilation_rate=1, input_shape=None, kernel_regularizer=None,
                 dtype=None):
        super().__init__(input_shape, dtype)
        self.filters = _positive_int(filters, "filters", "Conv2D")
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2D")
        self.strides = _pair(strides, "strides", "Conv2D")
        self.padding = _padding(padding, "Conv2D", allow_numbers=True)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate", "Conv2D")
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel = None
        self.bias = None
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) != 4:
            raise ValueError(f"Conv2D: expected a 4-D input (batch, height, width, channels), "
                             f"got shape {shape}")

    def build(self, input_shape):
        kh, kw = self.kernel_size
        cin = input_shape[-1]
        self._weight("kernel", (kh, kw, cin, self.filters), "glorot_uniform",
                     fan=(kh * kw * cin, kh * kw * self.filters))
        if self.use_bias:
            self._weight("bias", (self.filters,), "zeros")

    def _check_built(self, shape):
        cin = self.kernel.shape[2]
        if shape[-1] != cin:
            raise ValueError(f"Conv2D: expected an input of shape (batch, height, width, {cin}) "
                             f"(the layer was built for {cin} channels), got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        args = dict(stride=_compact(self.strides), padding=self.padding,
                    dilation=_compact(self.dilation_rate))
        if isinstance(self.activation, str) and self.activation.lower() == "relu":
            return F.conv2d(x, self.kernel, self.bias, activation="relu", **args)
        return self._act(F.conv2d(x, self.kernel, self.bias, **args))

    def extra_repr(self):
        s = f"filters={self.filters}, kernel_size={self.kernel_size}"
        if self.strides != (1, 1):
            s += f", strides={self.strides}"
        if self.padding != "valid":
            s += f", padding={self.padding!r}"
        if self.dilation_rate != (1, 1):
            s += f", dilation_rate={self.dilation_rate}"
        if self.activation is not None:
            s += f", activation={_activation_name(self.activation)!r}"
        if not self.use_bias:
            s += ", use_bias=False"
        return s


class _Pooling2D(Layer):
    _op = None  # the name of the functional op

    def __init__(self, pool_size=2, strides=None, padding="valid", input_shape=None):
        super().__init__(input_shape)
        name = type(self).__name__
        self.pool_size = _pair(pool_size, "pool_size", name)
        self.strides = self.pool_size if strides is None else _pair(strides, "strides", name)
        self.padding = _padding(padding, name)

    def _check_rank(self, shape):
        if len(shape) != 4:
            raise ValueError(f"{type(self).__name__}: expected a 4-D input (batch, height, width, "
                             f"channels), got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        return getattr(F, self._op)(x, _compact(self.pool_size), _compact(self.strides),
                                    self.padding)

    def extra_repr(self):
        return f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding!r}"


class MaxPooling2D(_Pooling2D):
    """Maximum over pool_size windows of NHWC images (strides default to pool_size)."""
    _op = "max_pool2d"


class AveragePooling2D(_Pooling2D):
    """Mean over pool_size windows of NHWC images (strides default to pool_size)."""
    _op = "avg_pool2d"


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); (batch,) -> (batch, 1)."""

    def __init__(self, input_shape=None):
        super().__init__(input_shape)

    def _check_rank(self, shape):
        if len(shape) < 1:
            raise ValueError(f"Flatten: expected an input with a batch axis, got shape {shape}")

    def forward(self, x):
        x = self._prepare(x)
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class Dropout(Layer):
    """Zeroes each input element with probability ``rate`` while training and
    scales the rest by 1 / (1 - rate); the identity in eval()."""

    def __init__(self, rate, input_shape=None):
        super().__init__(input_shape)
        if (isinstance(rate, bool) or not isinstance(rate, numbers.Real)
                or not 0 <= rate < 1):
            raise ValueError(f"Dropout: argument 'rate' must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def forward(self, x):
        x = self._prepare(x)
        return F.dropout(x, self.rate, training=self.training)

    def extra_repr(self):
        return f"rate={self.rate}"


class Activation(Layer):
    """Applies an activation by name ("relu", "sigmoid", "tanh", "softmax",
    "linear") or a callable."""

    def __init__(self, activation, input_shape=None):
        super().__init__(input_shape)
        self.activation = activation
        self._act = get_activation(activation)

    def forward(self, x):
        return self._act(self._prepare(x))

    def extra_repr(self):
        return repr(_activation_name(self.activation))


class BatchNormalization(Layer):
    """Keras's BatchNormalization: normalises over every axis but ``axis``.

    Training: y = gamma * (x - mean) / sqrt(var + epsilon) + beta with the
    batch mean and biased variance, and moving_mean = moving_mean * momentum
    + mean * (1 - momentum), moving_variance likewise with the same biased
    variance (Keras 3 does both). eval(): the moving statistics instead.
    gamma (ones) and beta (zeros) are trainable; moving_mean (zeros) and
    moving_variance (ones) are buffers, saved in state_dict()."""

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"BatchNormalization: argument 'axis' must be an int, got {axis!r}")
        self.axis = int(axis)
        for name, v in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"BatchNormalization: argument '{name}' must be a number, got "
                                f"{v!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization: argument 'momentum' must be in [0, 1], got "
                             f"{momentum}")
        if not epsilon > 0:
            raise ValueError(f"BatchNormalization: argument 'epsilon' must be > 0, got {epsilon}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.gamma = None
        self.beta = None
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) < 2 or not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"BatchNormalization: axis {self.axis} is out of range for an input "
                             f"of shape {shape} (at least 2-D: batch and features)")

    def build(self, input_shape):
        c = input_shape[self.axis]
        if self.scale:
            self._weight("gamma", (c,), "ones")
        if self.center:
            self._weight("beta", (c,), "zeros")
        self._weight("moving_mean", (c,), "zeros", trainable=False)
        self._weight("moving_variance", (c,), "ones", trainable=False)
        self._ndim = len(input_shape)

    def _check_built(self, shape):
        c = self.moving_mean.shape[0]
        if len(shape) != self._ndim or shape[self.axis] != c:
            want = ["d"] * self._ndim
            want[self.axis] = str(c)
            raise ValueError(f"BatchNormalization: expected a {self._ndim}-D input with {c} "
                             f"features on axis {self.axis}, ({', '.join(want)}), got shape "
                             f"{shape}")

    def forward(self, x):
        x = self._prepare(x)
        nd = x.ndim
        axis = self.axis % nd
        reduce = tuple(i for i in range(nd) if i != axis)
        bshape = tuple(x.shape[axis] if i == axis else 1 for i in range(nd))
        if self.training:
            mean = x.mean(axis=reduce, keepdims=True)
            centred = x - mean
            var = (centred * centred).mean(axis=reduce, keepdims=True)
            y = centred / (var + self.epsilon).sqrt()
            if x.size == 0:  # no statistics in an empty batch: keep the moving ones
                return self._affine(y, bshape)
            with no_grad():
                m = self.momentum
                mm, mv = self.moving_mean, self.moving_variance
                mm.copy_(mm * m + mean.detach().reshape(mm.shape) * (1.0 - m))
                mv.copy_(mv * m + var.detach().reshape(mv.shape) * (1.0 - m))
        else:
            mean = self.moving_mean.reshape(bshape)
            y = (x - mean) / (self.moving_variance.reshape(bshape) + self.epsilon).sqrt()
        return self._affine(y, bshape)

    def _affine(self, y, bshape):
        if self.scale:
            y = y * self.gamma.reshape(bshape)
        if self.center:
            y = y + self.beta.reshape(bshape)
        return y

    def extra_repr(self):
        return f"axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}"


# ---------------------------------------------------------------- recurrent layers
def _reverse_time(x):
    """x (batch, time, features) with the time axis reversed, gradient
    included: a view on the CPU; on the GPU (no indexing kernels there) the
    product with the reversing permutation."""
    if x.device == "cpu":
        return x[:, ::-1]
    steps = x.shape[1]
    flip = tensor(np.ascontiguousarray(np.eye(steps, dtype=np.float32)[::-1]), device=x.device)
    by_time = F.permute(x, (1, 0, 2))
    rows = F.reshape(by_time, (steps, -1))
    return F.permute(F.reshape(F.matmul(flip, rows), by_time.shape), (1, 0, 2))


def _concat_features(a, b):
    """[a, b] along the last axis, gradient included: F.concatenate on the
    CPU; on the GPU (no concatenation kernel there) the sum of products with
    the matrices that place each part."""
    if a.device == "cpu":
        return F.concatenate([a, b], axis=-1)
    na, nb = a.shape[-1], b.shape[-1]
    place = np.eye(na + nb, dtype=np.float32)
    out = None
    for part, rows in ((a, place[:na]), (b, place[na:])):
        flat = F.reshape(part, (-1, part.shape[-1]))
        placed = F.matmul(flat, tensor(np.ascontiguousarray(rows), device=a.device))
        out = placed if out is None else out + placed
    return F.reshape(out, a.shape[:-1] + (na + nb,))


class _Recurrent(Layer):
    """LSTM and GRU: the weights, the arguments and the call; the op is the
    subclass's. Inputs are (batch, time, features)."""
    _gates = 0

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 use_bias=True, input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        name = type(self).__name__
        self.units = _positive_int(units, "units", name)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.use_bias = bool(use_bias)
        self.kernel = None
        self.recurrent_kernel = None
        self.bias = None

    def _config(self):
        """The constructor's arguments (Bidirectional builds its backward copy from them)."""
        return dict(units=self.units, return_sequences=self.return_sequences,
                    return_state=self.return_state, go_backwards=self.go_backwards,
                    use_bias=self.use_bias, dtype=self.dtype)

    def _check_rank(self, shape):
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__}: expected a 3-D input (batch, time, "
                             f"features), got shape {shape}")

    def build(self, input_shape):
        n_in, width = input_shape[-1], self._gates * self.units
        self._weight("kernel", (n_in, width), "glorot_uniform", fan=(n_in, width))
        self._weight("recurrent_kernel", (self.units, width), "orthogonal")
        if self.use_bias:
            self._weight("bias", self._bias_shape(), self._bias_init())

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return "zeros"

    def _check_built(self, shape):
        n_in = self.kernel.shape[0]
        if shape[-1] != n_in:
            raise ValueError(f"{type(self).__name__}: expected an input of shape (batch, time, "
                             f"{n_in}) (the layer was built for {n_in} features), got shape "
                             f"{shape}")

    def _bias_or_zeros(self):
        if self.bias is not None:
            return self.bias
        return tensor(np.zeros(self._bias_shape(), self.dtype))

    def _initial_states(self, initial_state, names, batch):
        """The initial states as tensors of shape (batch, units), or Nones."""
        if initial_state is None:
            return [None] * len(names)
        layer = type(self).__name__
        states = initial_state
        if isinstance(states, (Tensor, np.ndarray)) and len(names) == 1:
            states = [states]
        if not isinstance(states, (list, tuple)) or len(states) != len(names):
            raise ValueError(f"{layer}: argument 'initial_state' must be a list of "
                             f"{len(names)} tensors [{', '.join(names)}], got {initial_state!r}")
        out = []
        for k, (s, name) in enumerate(zip(states, names)):
            s = s if isinstance(s, Tensor) else tensor(s)
            if s.shape != (batch, self.units):
                raise ValueError(f"{layer}: initial_state[{k}] ({name}) must have shape "
                                 f"({batch}, {self.units}) (batch, units), got {s.shape}")
            out.append(s)
        return out

    def forward(self, x, initial_state=None):
        x = self._prepare(x)
        states = self._initial_states(initial_state, self._state_names, x.shape[0])
        if self.go_backwards:
            x = _reverse_time(x)
        out, final = self._run(x, states)
        y = out if self.return_sequences else final[0]
        return (y,) + tuple(final) if self.return_state else y

    def extra_repr(self):
        s = f"units={self.units}"
        for flag in ("return_sequences", "return_state", "go_backwards"):
            if getattr(self, flag):
                s += f", {flag}=True"
        if not self.use_bias:
            s += ", use_bias=False"
        return s


class LSTM(_Recurrent):
    """Keras's LSTM: kernel (in, 4 units), recurrent_kernel (units, 4 units),
    bias (4 units,), gates [i, f, g, o]; Glorot uniform kernel, orthogonal
    recurrent kernel, zero bias but the forget gate's at 1 (Keras's
    unit_forget_bias). Returns the last output (batch, units), or every
    step's (batch, time, units) with return_sequences; with return_state,
    (output, h, c). ``layer(x, initial_state=[h0, c0])``."""
    _gates = 4
    _state_names = ("h", "c")

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 use_bias=True, unit_forget_bias=True, input_shape=None, dtype=None):
        super().__init__(units, return_sequences, return_state, go_backwards, use_bias,
                         input_shape, dtype)
        self.unit_forget_bias = bool(unit_forget_bias)
        self._build_from_argument()

    def _config(self):
        return dict(super()._config(), unit_forget_bias=self.unit_forget_bias)

    def _bias_init(self):
        b = np.zeros(self._bias_shape())
        if self.unit_forget_bias:
            b[self.units:2 * self.units] = 1.0
        return b

    def _run(self, x, states):
        out, (h, c) = F.lstm(x, states[0], states[1], self.kernel, self.recurrent_kernel,
                             self._bias_or_zeros())
        return out, (h, c)


class GRU(_Recurrent):
    """A GRU: kernel (in, 3 units), recurrent_kernel (units, 3 units), gates
    [z, r, h~], h' = (1 - z) h + z h~ (docs/api.md). By default the reset gate
    multiplies h before the recurrent product, bias (3 units,); with
    reset_after=True it multiplies the product (cuDNN's form), bias
    (2, 3 units). Returns as LSTM; with return_state, (output, h)."""
    _gates = 3
    _state_names = ("h",)

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 use_bias=True, reset_after=False, input_shape=None, dtype=None):
        super().__init__(units, return_sequences, return_state, go_backwards, use_bias,
                         input_shape, dtype)
        self.reset_after = bool(reset_after)
        self._build_from_argument()

    def _config(self):
        return dict(super()._config(), reset_after=self.reset_after)

    def _bias_shape(self):
        width = self._gates * self.units
        return (2, width) if self.reset_after else (width,)

    def _run(self, x, states):
        out, h = F.gru(x, states[0], self.kernel, self.recurrent_kernel, self._bias_or_zeros(),
                       reset_after=self.reset_after)
        return out, (h,)

    def extra_repr(self):
        return super().extra_repr() + (", reset_after=True" if self.reset_after else "")


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Layer):
    """Keras's Bidirectional wrapper of an LSTM or GRU: the layer runs over
    the sequence and a copy of it (same arguments, its own weights) runs
    over the reversed sequence; their outputs are merged (merge_mode
    "concat" by default: (..., 2 units); "sum", "mul", "ave", or None for
    the pair). With return_sequences the backward outputs are put back in
    time order first. With return_state: (output, *forward states,
    *backward states); initial_state likewise, forward states first."""

    def __init__(self, layer, merge_mode="concat", backward_layer=None, input_shape=None):
        super().__init__(input_shape)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional: argument 'layer' must be an LSTM or GRU layer, got "
                            f"{type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: argument 'merge_mode' must be one of "
                             f"{list(_MERGE_MODES)}, got {merge_mode!r}")
        if backward_layer is None:
            config = layer._config()
            config["go_backwards"] = not layer.go_backwards
            backward_layer = type(layer)(**config)
        elif not isinstance(backward_layer, _Recurrent):
            raise TypeError(f"Bidirectional: argument 'backward_layer' must be an LSTM or GRU "
                            f"layer, got {type(backward_layer).__name__}")
        self.forward_layer = layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self._build_from_argument()

    def _check_rank(self, shape):
        if len(shape) != 3:
            raise ValueError(f"Bidirectional: expected a 3-D input (batch, time, features), got "
                             f"shape {shape}")

    def forward(self, x, initial_state=None):
        x = self._prepare(x)
        fwd, bwd = self.forward_layer, self.backward_layer
        states_f = states_b = None
        if initial_state is not None:
            n = len(fwd._state_names)
            if not isinstance(initial_state, (list, tuple)) or len(initial_state) != 2 * n:
                raise ValueError(f"Bidirectional: argument 'initial_state' must be a list of "
                                 f"{2 * n} tensors (the forward layer's states, then the "
                                 f"backward layer's), got {initial_state!r}")
            states_f, states_b = list(initial_state[:n]), list(initial_state[n:])
        y_f = fwd(x, initial_state=states_f)
        y_b = bwd(x, initial_state=states_b)
        if fwd.return_state:
            (y_f, *s_f), (y_b, *s_b) = y_f, y_b
        if fwd.return_sequences:
            y_b = _reverse_time(y_b)
        if self.merge_mode == "concat":
            y = _concat_features(y_f, y_b)
        elif self.merge_mode == "sum":
            y = y_f + y_b
        elif self.merge_mode == "mul":
            y = y_f * y_b
        elif self.merge_mode == "ave":
            y = (y_f + y_b) * 0.5
        else:
            y = (y_f, y_b)
        if fwd.return_state:
            return (y,) + tuple(s_f) + tuple(s_b)
        return y

    def extra_repr(self):
        return f"merge_mode={self.merge_mode!r}"


class Embedding(Layer):
    """Keras's Embedding: integer indices (any shape) in [0, input_dim) ->
    rows of ``embeddings`` (input_dim, output_dim), RandomUniform(-0.05,
    0.05) as Keras; the gradient of repeated indices adds up."""

    def __init__(self, input_dim, output_dim, input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        self.input_dim = _positive_int(input_dim, "input_dim", "Embedding")
        self.output_dim = _positive_int(output_dim, "output_dim", "Embedding")
        self.embeddings = None
        self._weight("embeddings", (self.input_dim, self.output_dim), "uniform")
        self.built = True

    def forward(self, x):
        d = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
        if d.dtype.kind == "f" and np.array_equal(d, np.floor(d)):
            d = d.astype(np.int64)  # whole numbers in a float array, as Keras casts them
        if d.dtype.kind not in "iu":
            raise TypeError(f"Embedding: expected integer indices, got dtype {d.dtype}")
        if d.size and (d.min() < 0 or d.max() >= self.input_dim):
            bad = d[(d < 0) | (d >= self.input_dim)].flat[0]
            raise ValueError(f"Embedding: indices must be in [0, {self.input_dim}), got {bad} "
                             f"(input of shape {d.shape})")
        return self.embeddings[d.astype(np.int64)]

    def extra_repr(self):
        return f"input_dim={self.input_dim}, output_dim={self.output_dim}"

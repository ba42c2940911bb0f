"""``Layer``: a Module with Keras's lazy weights (built on the first call),
its initialisers, and the record of its constructor arguments that
``get_config`` (model files) and ``Bidirectional`` rebuild it from."""
import functools
import inspect
import math
import numbers

import numpy as np

from .. import _random
from ..tensor import Tensor, tensor
from .. import regularizers
from .activations import _ACTIVATIONS, _activation_name, get_activation
from .module import Module


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
            if isinstance(v, Layer):  # a wrapped layer: its own {"class_name", "config"}
                return v.get_config()
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

    # the input's axes, for layers that take one rank: "(batch, time, features)"
    _input_axes = None

    def _check_rank(self, shape):
        """ValueError unless an input of ``shape`` fits this layer."""
        axes = self._input_axes
        if axes is not None and len(shape) != axes.count(",") + 1:
            raise ValueError(f"{type(self).__name__}: expected a {axes.count(',') + 1}-D input "
                             f"{axes}, got shape {shape}")

    def _output_options(self, activation, use_bias, kernel_regularizer):
        """Dense's and Conv2D's common arguments: the activation after the
        product, the bias, the kernel's regulariser."""
        self.activation = activation
        self._act = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel = None
        self.bias = None

    def _options_repr(self):
        s = ""
        if self.activation is not None:
            s += f", activation={_activation_name(self.activation)!r}"
        if not self.use_bias:
            s += ", use_bias=False"
        return s

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

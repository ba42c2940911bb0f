"""A stand-in for fastnn._C_cuda built on NumPy, so the GPU paths of the
Python layer (the _backend.GPU namespace, device checks, moving tensors)
run and are checked on a machine without a GPU. It implements the bindings'
contract (float32 arrays, new results, same signatures); the CUDA kernels
themselves are tested against NumPy in test_cuda_ops.py where a GPU is."""
import numpy as np
from reference import ops as ref

from fastnn import _C
from reference import ops as ref


class FakeDeviceArray:
    """Holds a private float32 C-order array; like DeviceArray it exposes no
    buffer protocol, so NumPy code that meets one by mistake fails."""
    __array_ufunc__ = None

    def __init__(self, values):
        self._host = np.array(values, dtype=np.float32, order="C", copy=True)

    @staticmethod
    def from_numpy(x):
        return FakeDeviceArray(x)

    def numpy(self):
        return self._host.copy()

    @property
    def shape(self):
        return self._host.shape

    @property
    def ndim(self):
        return self._host.ndim

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def size(self):
        return self._host.size

    def __array__(self, *args, **kwargs):
        raise TypeError("a device array must be copied to the host explicitly")


def _h(x):
    assert isinstance(x, FakeDeviceArray), f"expected a device array, got {type(x).__name__}"
    return x._host


def _d(x):
    return FakeDeviceArray(np.asarray(x, np.float32))


_UNARY = {"neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
          **{name: forward for name, (forward, _) in ref.OUTPUT_GRAD_ACTIVATIONS.items()}}
_UNARY_BACKWARD = {"exp": lambda y, g: g * y, "sqrt": lambda y, g: g * 0.5 / y,
                   **{name: lambda y, g, b=backward: b(g, y)
                      for name, (_, backward) in ref.OUTPUT_GRAD_ACTIVATIONS.items()}}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal,
           "gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal}


class FakeCudaModule:
    """The functions of _C_cuda that the Python layer calls. ``calls``
    counts them by name, so a test can tell that work ran "on the device"."""

    DeviceArray = FakeDeviceArray

    def __init__(self):
        self.calls = {}

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def device_count(self):
        return 1

    def init_error(self):
        return ""

    def synchronize(self):
        pass

    def unary(self, op, x):
        self._count("unary")
        return _d(_UNARY[op](_h(x)))

    def unary_backward(self, op, y, dy):
        self._count("unary_backward")
        return _d(_UNARY_BACKWARD[op](_h(y), _h(dy)))

    def binary(self, op, a, b):
        self._count("binary")
        try:
            return _d(_BINARY[op](_h(a), _h(b)))
        except ValueError:
            raise ValueError(f"binary: shapes {a.shape} and {b.shape} do not broadcast") from None

    def scalar(self, op, x, s):
        self._count("scalar")
        if op.startswith("r") and op[1:] in _BINARY:
            return _d(_BINARY[op[1:]](np.float32(s), _h(x)))
        return _d(_BINARY[op](_h(x), np.float32(s)))

    def sum(self, x, axes, keepdims):
        self._count("sum")
        return _d(np.sum(_h(x), axis=tuple(axes), keepdims=keepdims))

    def max(self, x, axes, keepdims):
        self._count("max")
        return _d(np.max(_h(x), axis=tuple(axes), keepdims=keepdims))

    def broadcast_to(self, x, shape):
        self._count("broadcast_to")
        return _d(np.broadcast_to(_h(x), shape))

    def reshape(self, x, shape):
        self._count("reshape")
        assert all(n >= 0 for n in shape), f"reshape takes no -1 (as the binding), got {shape}"
        return _d(_h(x).reshape(shape))

    def permute(self, x, axes):
        self._count("permute")
        return _d(np.transpose(_h(x), axes))

    def copy(self, x):
        self._count("copy")
        return _d(_h(x))

    def assign(self, dst, src):
        self._count("assign")
        assert dst.shape == src.shape
        _h(dst)[...] = _h(src)

    def current_device(self):
        return 0

    def set_device(self, device):
        assert device == 0

    def fill(self, x, value):
        self._count("fill")
        _h(x)[...] = value

    def axpy(self, alpha, x, y):
        self._count("axpy")
        _h(y)[...] += np.float32(alpha) * _h(x)

    def gemm(self, a, b, trans_a, trans_b, alpha, beta, c):
        self._count("gemm")
        A = _h(a).T if trans_a else _h(a)
        B = _h(b).T if trans_b else _h(b)
        out = np.float32(alpha) * (A @ B)
        if c is None:
            return _d(out)
        _h(c)[...] = out + np.float32(beta) * _h(c)
        return c

    def cross_entropy(self, logits, labels):
        self._count("cross_entropy")
        assert isinstance(labels, np.ndarray) and labels.dtype == np.int64
        loss, prob = _C.cross_entropy(_h(logits), labels)
        return loss, _d(prob)

    def cross_entropy_backward(self, prob, labels, scale):
        self._count("cross_entropy_backward")
        return _d(_C.cross_entropy_backward(_h(prob), labels, scale))

    def conv2d(self, x, w, b, *window_and_relu):
        self._count("conv2d")
        return _d(_C.conv2d(_h(x), _h(w), None if b is None else _h(b), *window_and_relu))

    def conv2d_backward(self, x, w, dy, *window_and_needs, y=None):
        self._count("conv2d_backward")
        grads = _C.conv2d_backward(_h(x), _h(w), _h(dy), *window_and_needs,
                                   y=None if y is None else _h(y))
        return tuple(None if g is None else _d(g) for g in grads)

    def _pool(self, name, *args, **kwargs):
        self._count(name)
        host = [_h(a) if isinstance(a, FakeDeviceArray) else a for a in args]
        host_kw = {k: _h(a) if isinstance(a, FakeDeviceArray) else a for k, a in kwargs.items()}
        return _d(getattr(_C, name)(*host, **host_kw))

    def max_pool2d(self, *args):
        return self._pool("max_pool2d", *args)

    def max_pool2d_backward(self, *args, **kwargs):
        return self._pool("max_pool2d_backward", *args, **kwargs)

    def avg_pool2d(self, *args):
        return self._pool("avg_pool2d", *args)

    def avg_pool2d_backward(self, *args):
        return self._pool("avg_pool2d_backward", *args)

    def dropout(self, x, rate, key):
        self._count("dropout")
        return _d(_C.dropout(_h(x), rate, key))

    # optimizers: fastnn._C's fused steps on the host arrays, in place
    def _optim(self, name, params, grads, *states_steps_and_options):
        self._count(name)
        host = [[_h(x) for x in arg] if isinstance(arg, list) and arg
                and isinstance(arg[0], FakeDeviceArray) else arg
                for arg in states_steps_and_options]
        getattr(_C, name)([_h(p) for p in params], [_h(g) for g in grads], *host)

    def sgd_step(self, params, grads, *rest):
        self._optim("sgd_step", params, grads, *rest)

    def adagrad_step(self, params, grads, *rest):
        self._optim("adagrad_step", params, grads, *rest)

    def rmsprop_step(self, params, grads, *rest):
        self._optim("rmsprop_step", params, grads, *rest)

    def adam_step(self, params, grads, *rest):
        self._optim("adam_step", params, grads, *rest)

    def _rnn(self, name, *args, **needs):
        self._count(name)
        host = [_h(a) if isinstance(a, FakeDeviceArray) else a for a in args]
        return tuple(None if r is None else _d(r) for r in getattr(_C, name)(*host, **needs))

    def rnn_forward(self, *args):
        return self._rnn("rnn_forward", *args)

    def rnn_backward(self, *args, **needs):
        return self._rnn("rnn_backward", *args, **needs)


def _host_kernel(name):
    """A method running _C's kernel of this name on the host copies."""
    def op(self, *arrays):
        self._count(name)
        return _d(getattr(_C, name)(*(_h(a) for a in arrays)))
    return op


def _reference_activation(name, backward):
    """A method giving tests/reference/ops.py's float64 formula, in float32."""
    def op(self, x, *dy, **param):
        self._count(name + ("_backward" if backward else ""))
        p = next(iter(param.values()), None)
        if backward:
            return _d(ref.activation_backward(name, _h(dy[0]), _h(x), p)[0])
        return _d(ref.activation_forward(name, _h(x), p))
    return op


for _name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
    setattr(FakeCudaModule, _name, _host_kernel(_name))
    setattr(FakeCudaModule, _name + "_backward", _host_kernel(_name + "_backward"))
for _name in ref.ACTIVATIONS:
    setattr(FakeCudaModule, _name, _reference_activation(_name, False))
    setattr(FakeCudaModule, _name + "_backward", _reference_activation(_name, True))

"""Optimizers with PyTorch's ``torch.optim`` interface and update formulas.

    opt = fastnn.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam`` and ``AdamW`` take PyTorch's
arguments and defaults, keep PyTorch's state (``opt.state[p]``, with the
same names) and make PyTorch's updates, first step included, to float32
rounding. Parameters can be split into groups with their own
hyperparameters: ``Adam([{"params": a, "lr": 1e-2}, {"params": b}],
lr=1e-3)``. Each step updates every parameter of a group with one fused
kernel call (C++ on the CPU, CUDA for GPU tensors): parameter and state are
read and written once, never through NumPy temporaries. Parameters must be
float32 tensors (the kernels' type).

``get(identifier, params)`` resolves Keras's optimizer names ("sgd",
"adam", "adamw", "rmsprop", "adagrad") for ``compile(optimizer=...)``.
``clip_grad_norm`` and ``clip_grad_value`` clip gradients in place before a
step; ``fastnn.optim.lr_scheduler`` has the learning-rate schedules.
"""
import math

import numpy as np

from .. import _backend, _checks
from ..tensor import Tensor, _wrap
from . import lr_scheduler
from .optimizer import Optimizer


def _at_least(value, low, name, fn, finite=True):
    """A hyper-parameter >= low; finite unless asked otherwise (an infinite
    learning rate is as wrong as NaN)."""
    return _checks.number(value, name, fn, low, finite=finite)


def _in_unit_interval(value, name, fn):
    return _checks.number(value, name, fn, 0.0, 1.0, high_open=True)

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "clip_grad_norm",
           "clip_grad_norm_", "clip_grad_value", "clip_grad_value_", "get", "lr_scheduler"]


# ---------------------------------------------------------------- the optimizers
class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD: with weight_decay the
    gradient is g + weight_decay * p; with momentum the buffer is
    b = momentum * b + (1 - dampening) * g (b = g on the first step), and the
    step uses b, or g + momentum * b with nesterov; p -= lr * step."""
    _state_names = ("momentum_buffer",)
    _has_step = False
    _kernel = "sgd_step"

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_hyperparameters(self, g):
        fn = "SGD"
        g["lr"] = _at_least(g["lr"], 0.0, "lr", fn)
        g["momentum"] = _at_least(g["momentum"], 0.0, "momentum", fn)
        g["dampening"] = _checks.number(g["dampening"], "dampening", fn)
        g["weight_decay"] = _at_least(g["weight_decay"], 0.0, "weight_decay", fn)
        g["nesterov"] = bool(g["nesterov"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening == 0, got "
                             f"momentum={g['momentum']}, dampening={g['dampening']}")

    def _buffers_in_use(self, g):
        return {"momentum_buffer": g["momentum"] != 0}

    def _kernel_args(self, g):
        return (float(g["lr"]), float(g["momentum"]), float(g["dampening"]),
                float(g["weight_decay"]), bool(g["nesterov"]))


class Adagrad(Optimizer):
    """Adagrad, torch.optim.Adagrad: g += weight_decay * p; sum += g^2;
    p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps); the sum
    starts at initial_accumulator_value."""
    _state_names = ("sum",)
    _kernel = "adagrad_step"

    def __init__(self, params, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))
        for group in self.param_groups:  # PyTorch makes Adagrad's state up front
            for p in group["params"]:
                self.state[p] = {"step": 0}
                self._prepare_state(group, p, self.state[p], self._buffers_in_use(group))

    def _check_hyperparameters(self, g):
        fn = "Adagrad"
        for name in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            g[name] = _at_least(g[name], 0.0, name, fn)

    def _initial_value(self, group, name):
        return group["initial_accumulator_value"]

    def _buffers_in_use(self, g):
        return {"sum": True}

    def _kernel_args(self, g):
        return (float(g["lr"]), float(g["lr_decay"]), float(g["weight_decay"]), float(g["eps"]))


class RMSprop(Optimizer):
    """RMSprop, torch.optim.RMSprop: g += weight_decay * p;
    square_avg = alpha * square_avg + (1 - alpha) * g^2; the denominator is
    sqrt(square_avg) + eps, or with centered sqrt(square_avg - grad_avg^2) +
    eps where grad_avg is the running mean of g; with momentum
    buf = momentum * buf + g / denominator and p -= lr * buf, else
    p -= lr * g / denominator."""
    _state_names = ("square_avg", "momentum_buffer", "grad_avg")
    _kernel = "rmsprop_step"

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_hyperparameters(self, g):
        fn = "RMSprop"
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            g[name] = _at_least(g[name], 0.0, name, fn)
        g["centered"] = bool(g["centered"])

    def _buffers_in_use(self, g):
        return {"square_avg": True, "momentum_buffer": g["momentum"] > 0,
                "grad_avg": g["centered"]}

    def _kernel_args(self, g):
        return (float(g["lr"]), float(g["alpha"]), float(g["eps"]), float(g["weight_decay"]),
                float(g["momentum"]), bool(g["centered"]))


class Adam(Optimizer):
    """Adam, torch.optim.Adam: g += weight_decay * p; m = beta1 m + (1 - beta1) g;
    v = beta2 v + (1 - beta2) g^2 (with amsgrad, v_max = max(v_max, v) is used
    instead of v below); p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 -
    beta2^t) + eps), t the parameter's step count."""
    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _kernel = "adam_step"
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check_hyperparameters(self, g):
        fn = type(self).__name__
        g["lr"] = _at_least(g["lr"], 0.0, "lr", fn)
        g["eps"] = _at_least(g["eps"], 0.0, "eps", fn)
        g["weight_decay"] = _at_least(g["weight_decay"], 0.0, "weight_decay", fn)
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{fn}: argument 'betas' must be a pair of numbers, got {betas!r}")
        g["betas"] = (_in_unit_interval(betas[0], "betas[0]", fn),
                      _in_unit_interval(betas[1], "betas[1]", fn))
        g["amsgrad"] = bool(g["amsgrad"])

    def _buffers_in_use(self, g):
        return {"exp_avg": True, "exp_avg_sq": True, "max_exp_avg_sq": g["amsgrad"]}

    def _kernel_args(self, g):
        beta1, beta2 = g["betas"]
        return (float(g["lr"]), float(beta1), float(beta2), float(g["eps"]),
                float(g["weight_decay"]), bool(g["amsgrad"]), self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay, torch.optim.AdamW: p *= 1 - lr *
    weight_decay first, then Adam's update without weight decay in the
    gradient. weight_decay defaults to 0.01."""
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)


# ---------------------------------------------------------------- Keras names
_BY_NAME = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(identifier, params=None):
    """The optimizer that ``compile(optimizer=identifier)`` means, over ``params``:

    - a Keras name, any case: "sgd", "adagrad", "rmsprop", "adam", "adamw",
      giving that optimizer with its defaults (PyTorch's, see the classes);
    - an Optimizer class, instantiated with its defaults;
    - a callable taking ``params`` (e.g. ``lambda p: Adam(p, lr=1e-2)``), for
      options on a model whose weights exist only after its first call;
    - an Optimizer instance, returned as it is (``params`` is then ignored).

    Without ``params``, a name, class or callable gives the factory
    ``params -> optimizer`` (checked now, used once the weights exist).
    Raises ValueError for an unknown name, TypeError for anything else."""
    if isinstance(identifier, Optimizer):
        return identifier
    make = _factory(identifier)
    return make if params is None else make(params)


def _factory(identifier):
    if isinstance(identifier, str):
        return _checks.lookup(_BY_NAME, identifier, "optim.get", "optimizer")
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier
    if callable(identifier):
        def make(params):
            opt = identifier(params)
            if not isinstance(opt, Optimizer):
                raise TypeError(f"optim.get: the callable returned a {type(opt).__name__}, not "
                                "an Optimizer")
            return opt
        return make
    raise TypeError(f"optim.get: argument 'identifier' must be an optimizer name, class, "
                    f"instance or factory, got {type(identifier).__name__}")


# ---------------------------------------------------------------- gradient clipping
def _grads(params, fn):
    if isinstance(params, Tensor):
        params = [params]
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{fn}: argument 'params' must be a Tensor or an iterable of them, got "
                        f"{type(params).__name__}")
    out = []
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: params[{i}] must be a Tensor, got {type(p).__name__}")
        if p.grad is not None:
            out.append(p)
    return out


def _set_grad(p, array):
    """Writes array into p.grad's memory when it can, else makes it p.grad."""
    g = p.grad._data
    xp = _backend.of(g)
    if xp.is_owned(g) and xp is _backend.of(array):
        xp.store(g, array)
    else:
        p.grad = _wrap(array)


def clip_grad_norm(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scales the gradients of ``params`` in place so that their joint norm
    (the ``norm_type`` norm of all of them as one vector; ``math.inf`` for
    the largest magnitude) is at most ``max_norm``, as
    torch.nn.utils.clip_grad_norm_: every gradient is multiplied by
    max_norm / (total_norm + 1e-6) when that is below 1. Returns the total
    norm before clipping, a Python float. Parameters without a gradient are
    skipped. With error_if_nonfinite a NaN or infinite norm raises
    RuntimeError (otherwise the gradients become NaN, as in PyTorch)."""
    fn = "clip_grad_norm"
    max_norm = _at_least(max_norm, 0.0, "max_norm", fn, finite=False)
    norm_type = _checks.number(norm_type, "norm_type", fn, 0.0, low_open=True)
    ps = _grads(params, fn)
    if not ps:
        return 0.0
    norms = [_backend.of(p.grad._data).norm(p.grad._data, norm_type) for p in ps]
    if norm_type == math.inf:
        total = max(norms)
    else:
        total = math.fsum(n ** norm_type for n in norms) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"{fn}: the total norm of the gradients is {total}; pass "
                           "error_if_nonfinite=False to clip anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for p in ps:
            g = p.grad._data
            _set_grad(p, _backend.of(g).mul(g, float(coef)))
    return total


def clip_grad_value(params, clip_value):
    """Clips every gradient element of ``params`` to [-clip_value, clip_value]
    in place (torch.nn.utils.clip_grad_value_)."""
    fn = "clip_grad_value"
    v = _at_least(clip_value, 0.0, "clip_value", fn, finite=False)
    for p in _grads(params, fn):
        g = p.grad._data
        _set_grad(p, _backend.of(g).clip(g, -v, v))


clip_grad_norm_ = clip_grad_norm
clip_grad_value_ = clip_grad_value

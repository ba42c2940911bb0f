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
import numbers

import numpy as np

from .. import _C
from .. import cuda as _cuda
from ..autograd import enable_grad
from ..tensor import Tensor, _wrap, tensor as _tensor_from

_F32 = np.dtype(np.float32)

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "clip_grad_norm",
           "clip_grad_norm_", "clip_grad_value", "clip_grad_value_", "get", "lr_scheduler"]


# ---------------------------------------------------------------- argument checks
def _real(value, name, fn):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: argument '{name}' must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{fn}: argument '{name}' must be a number, got nan")
    return value


def _at_least(value, low, name, fn, finite=True):
    value = _real(value, name, fn)
    if not value >= low or (finite and math.isinf(value)):
        raise ValueError(f"{fn}: argument '{name}' must be >= {low}{' and finite' if finite else ''}"
                         f", got {value}")
    return value


def _in_unit_interval(value, name, fn):
    """A number in [0, 1)."""
    value = _real(value, name, fn)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{fn}: argument '{name}' must be in [0, 1), got {value}")
    return value


def _param_list(params, fn):
    """The tensors of a group's 'params': a Tensor or an iterable of them."""
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, (str, bytes, dict, np.ndarray)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{fn}: argument 'params' must be an iterable of Tensors or of dicts, "
                        f"got {type(params).__name__}")
    out = list(params)
    for i, p in enumerate(out):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: params[{i}] must be a Tensor, got {type(p).__name__}")
        if not p.is_leaf:
            raise ValueError(f"{fn}: params[{i}] is not a leaf tensor (it was computed by an "
                             "op); optimizers update leaves, e.g. a layer's weights")
        if p.dtype != np.float32:
            raise TypeError(f"{fn}: params[{i}] must be float32, got dtype {p.dtype}")
    return out


# ---------------------------------------------------------------- the base class
class Optimizer:
    """The base class: parameter groups, state, ``zero_grad``, ``state_dict``.

    A subclass sets ``_kernel`` (the name of its step in fastnn._C and
    fastnn._C_cuda) and ``_state_names`` (its state buffers, PyTorch's names,
    in the order the kernel takes them), and implements
    ``_buffers_in_use(group)`` and ``_kernel_args(group)``.
    """
    _state_names = ()
    _has_step = True  # keeps a per-parameter step count in state["step"]

    def __init__(self, params, defaults):
        fn = type(self).__name__
        self.defaults = dict(defaults)
        self.state = {}  # Tensor -> dict, keyed by identity (Tensor hashes by id)
        self.param_groups = []
        if isinstance(params, Tensor):
            params = [params]
        if isinstance(params, (str, bytes, dict, np.ndarray)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{fn}: argument 'params' must be an iterable of Tensors or of "
                            f"dicts, got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{fn}: got an empty parameter list (a model has no weights "
                             "before its first call: call it once on an input first)")
        if not all(isinstance(g, dict) for g in groups):
            if any(isinstance(g, dict) for g in groups):
                raise TypeError(f"{fn}: argument 'params' must hold only Tensors or only dicts")
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Adds a group: a dict with "params" (tensors) and any hyperparameters
        to override the defaults for them."""
        fn = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{fn}.add_param_group: argument 'param_group' must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{fn}.add_param_group: the group has no 'params' entry")
        group = dict(param_group)
        group["params"] = _param_list(group["params"], fn)
        if not group["params"]:
            raise ValueError(f"{fn}: a parameter group has an empty parameter list")
        unknown = [k for k in group if k != "params" and k not in self.defaults
                   and k != "initial_lr"]
        if unknown:
            raise ValueError(f"{fn}: unknown hyperparameters {unknown} in a parameter group; "
                             f"valid ones are {sorted(self.defaults)}")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_hyperparameters(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in group["params"]]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ValueError(f"{fn}: a parameter appears twice (in one group or in two)")
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        """ValueError / TypeError for a hyperparameter out of range (subclasses)."""

    # ------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none=True):
        """Clears the gradients of every parameter (sets .grad to None, or to
        zeros with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = _tensor_from(np.zeros(p.shape, np.float32)).to(p.device)

    def step(self, closure=None):
        """Updates every parameter that has a gradient, in place. ``closure``
        (optional) recomputes and returns the loss; it runs with grad enabled
        before the update and its value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group):
        """One kernel call per device for the group's parameters that have a
        gradient. Everything is checked before the first change."""
        fn = type(self).__name__
        in_use = self._buffers_in_use(group)
        used = [name for name in self._state_names if in_use[name]]
        batches = {}  # device -> (params, grads, buffers per used state, steps, (p, state))
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0} if self._has_step else {}
            first = self._prepare_state(group, p, state, in_use)
            data = p._data
            device = "cpu" if type(data) is np.ndarray else p.device
            batch = batches.get(device)
            if batch is None:
                batch = batches[device] = ([], [], [[] for _ in used], [], [])
            params, grads, buffers, steps, entries = batch
            params.append(data)
            grads.append(_grad_array(p, data, fn))
            for buffer, name in zip(buffers, used):
                buffer.append(state[name])
            steps.append(state["step"] + 1 if self._has_step else 1 if first else 2)
            entries.append((p, state))
        for device, (params, grads, buffers, steps, entries) in batches.items():
            given = iter(buffers)
            lists = [next(given) if in_use[name] else None for name in self._state_names]
            module = _C if device == "cpu" else _cuda._C_cuda
            getattr(module, self._kernel)(params, grads, *lists, steps, *self._kernel_args(group))
            for (p, state), step in zip(entries, steps):
                if self._has_step:
                    state["step"] = step
                p._ver[0] += 1  # in place: a graph that saved the old value refuses backward

    def _prepare_state(self, group, p, state, in_use):
        """Creates the state buffers in use that p lacks (zeros, on its device);
        returns whether a buffer was created (SGD's first momentum step)."""
        created = False
        for name in self._state_names:
            if in_use[name] and name not in state:
                state[name] = _zeros_like(p, self._initial_value(group, name))
                created = True
        return created

    def _initial_value(self, group, name):
        return 0.0

    # ------------------------------------------------------------ state
    def state_dict(self):
        """{"state": {index: {name: value}}, "param_groups": [{hyperparameters,
        "params": [indices]}]} as PyTorch's, parameters numbered in group
        order; state arrays are NumPy copies."""
        index = {}
        groups = []
        for group in self.param_groups:
            entry = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            entry["params"] = ids
            groups.append(entry)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                s = self.state.get(p)
                if s:
                    state[index[id(p)]] = {k: (v if isinstance(v, (int, float)) else
                                               np.array(_cuda.to_host(v), copy=True))
                                           for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores the state and hyperparameters saved by ``state_dict`` into an
        optimizer over the same parameters (same groups, same sizes)."""
        fn = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{fn}: argument 'state_dict' must be a dict with keys 'state' and "
                             "'param_groups' (what state_dict() returns)")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{fn}: the saved state has {len(saved_groups)} parameter groups, "
                             f"this optimizer {len(self.param_groups)}")
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{fn}: saved group {i} has {len(saved['params'])} parameters, "
                                 f"this optimizer's {len(group['params'])}")
            by_index.update(zip(saved["params"], group["params"]))
        new_state = {}
        for index, saved in state_dict["state"].items():
            if index not in by_index:
                raise ValueError(f"{fn}: the saved state names parameter {index}, which no "
                                 "saved group holds")
            p = by_index[index]
            entry = {}
            for name, value in saved.items():
                if name == "step":
                    entry[name] = int(value)
                    continue
                if name not in self._state_names:
                    raise ValueError(f"{fn}: unknown state {name!r} for parameter {index}; "
                                     f"expected {list(self._state_names)}")
                arr = np.asarray(_cuda.to_host(value), dtype=np.float32)
                if arr.shape != p.shape:
                    raise ValueError(f"{fn}: state {name!r} of parameter {index} has shape "
                                     f"{arr.shape}, the parameter {p.shape}")
                entry[name] = _tensor_from(np.array(arr, copy=True)).to(p.device)._data
            new_state[p] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
            self._check_hyperparameters(group)
        self.state = new_state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"


def _grad_array(p, data, fn):
    """p.grad's array as the kernels take it: float32, C order, on the
    device of p's array `data`, of its shape."""
    g = p.grad._data if isinstance(p.grad, Tensor) else p.grad
    if type(data) is np.ndarray:
        if type(g) is not np.ndarray:
            if _cuda.is_device_array(g):
                raise ValueError(f"{fn}.step: a parameter on cpu has a gradient on cuda")
            g = np.asarray(g)
        if g.dtype is not _F32 or not g.flags.c_contiguous:
            g = np.ascontiguousarray(g, dtype=np.float32)
    elif not _cuda.is_device_array(g):
        raise ValueError(f"{fn}.step: a parameter on {p.device} has a gradient on cpu")
    if tuple(g.shape) != tuple(data.shape):
        raise ValueError(f"{fn}.step: a parameter of shape {tuple(data.shape)} has a gradient of "
                         f"shape {tuple(g.shape)}")
    return g


def _zeros_like(p, value=0.0):
    """A float32 array of p's shape on p's device, every element `value`."""
    if p.device == "cpu":
        return np.full(p.shape, value, np.float32)
    out = _cuda._C_cuda.copy(p._data)  # allocated on p's device
    _cuda._C_cuda.fill(out, float(value))
    return out


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
        g["dampening"] = _real(g["dampening"], "dampening", fn)
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

    Raises ValueError for an unknown name, TypeError for anything else."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"optim.get: unknown optimizer {identifier!r}; valid names are "
                             f"{sorted(_BY_NAME)}")
        return cls(params)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier(params)
    if callable(identifier):
        opt = identifier(params)
        if not isinstance(opt, Optimizer):
            raise TypeError(f"optim.get: the callable returned a {type(opt).__name__}, not an "
                            "Optimizer")
        return opt
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
    if type(g) is np.ndarray and type(array) is np.ndarray and g.flags.writeable:
        np.copyto(g, array, casting="unsafe")
    else:
        p.grad = _wrap(array)


def _norm_of(g, norm_type):
    """The norm of one gradient array, a Python float."""
    if type(g) is np.ndarray:
        flat = g.reshape(-1)
        if norm_type == math.inf:
            return float(np.max(np.abs(flat))) if flat.size else 0.0
        if norm_type == 2.0:
            return math.sqrt(float(np.dot(flat, flat)))
        return float(np.sum(np.abs(flat.astype(np.float64)) ** norm_type) ** (1.0 / norm_type))
    cc = _cuda._C_cuda
    axes = list(range(g.ndim))
    if g.size == 0:
        return 0.0
    if norm_type == math.inf:
        return float(cc.max(cc.unary("abs", g), axes, False).numpy())
    if norm_type == 2.0:
        return math.sqrt(float(cc.sum(cc.binary("mul", g, g), axes, False).numpy()))
    powered = cc.scalar("pow", cc.unary("abs", g), float(norm_type))
    return float(cc.sum(powered, axes, False).numpy()) ** (1.0 / norm_type)


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
    norm_type = _real(norm_type, "norm_type", fn)
    if not norm_type > 0:
        raise ValueError(f"{fn}: argument 'norm_type' must be > 0 (or math.inf), got {norm_type}")
    ps = _grads(params, fn)
    if not ps:
        return 0.0
    norms = [_norm_of(p.grad._data, norm_type) for p in ps]
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
            if type(g) is np.ndarray:
                _set_grad(p, g * np.asarray(coef, g.dtype))
            else:
                _set_grad(p, _cuda._C_cuda.scalar("mul", g, float(coef)))
    return total


def clip_grad_value(params, clip_value):
    """Clips every gradient element of ``params`` to [-clip_value, clip_value]
    in place (torch.nn.utils.clip_grad_value_)."""
    fn = "clip_grad_value"
    v = _at_least(clip_value, 0.0, "clip_value", fn, finite=False)
    for p in _grads(params, fn):
        g = p.grad._data
        if type(g) is np.ndarray:
            clipped = np.clip(g, -v, v)
        else:
            clipped = _cuda._C_cuda.scalar("minimum", _cuda._C_cuda.scalar("maximum", g, -v), v)
        _set_grad(p, clipped)


clip_grad_norm_ = clip_grad_norm
clip_grad_value_ = clip_grad_value

from . import lr_scheduler  # noqa: E402  (it imports Optimizer from here)

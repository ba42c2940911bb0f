"""The base class of the optimizers: parameter groups, state, the fused
step per device, ``state_dict``."""
import numpy as np

from .. import _backend
from .. import cuda as _cuda
from ..autograd import enable_grad
from ..tensor import Tensor, tensor as _tensor_from

_F32 = np.dtype(np.float32)


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
            xp = _backend.of(params[0])
            xp.optimizer_step(self._kernel, params, grads, *lists, steps,
                              *self._kernel_args(group))
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
    return _backend.of(p._data).full_like(p._data, value)



"""``Module`` (PyTorch's: registration of parameters, buffers and children;
traversal, modes, state, moving between devices) and the containers
``Sequential`` and ``ModuleList``."""
import numpy as np

from .. import cuda as _cuda
from ..autograd import no_grad
from ..tensor import Tensor, _parse_device, tensor


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

    def _forward_with(self, following, x):
        """following(self(x)) computed as one op, or None (most modules) when
        the two run one after the other (Sequential asks)."""
        return None

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
class _Container(Module):
    """Children registered in order as "0", "1", ..."""

    def _append(self, module, fn, name):
        if not isinstance(module, Module):
            raise TypeError(f"{fn}: argument '{name}' must be a Module, got "
                            f"{type(module).__name__}")
        self._modules[str(len(self._modules))] = module
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))


class Sequential(_Container):
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
        return self._append(layer, f"{type(self).__name__}.add", "layer")

    def forward(self, x):
        layers = list(self._modules.values())
        i = 0
        while i < len(layers):
            # a layer may run together with the next one (Conv2D + MaxPooling2D)
            fused = layers[i]._forward_with(layers[i + 1], x) if i + 1 < len(layers) else None
            if fused is None:
                x = layers[i](x)
                i += 1
            else:
                x = fused
                i += 2
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


class ModuleList(_Container):
    """A list of modules registered as children "0", "1", ... (no forward)."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, module):
        return self._append(module, "ModuleList.append", "module")

    def __getitem__(self, index):
        return list(self._modules.values())[index]

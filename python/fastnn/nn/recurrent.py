"""Keras's recurrent layers: LSTM, GRU and the Bidirectional wrapper."""
import numpy as np

from .. import _checks
from .. import functional as F
from ..tensor import Tensor, tensor
from .layer import Layer


def _reverse_time(x):
    """x (batch, time, features) with the time axis reversed, gradient included."""
    return F.flip(x, 1)


class _Recurrent(Layer):
    """LSTM and GRU: the weights, the arguments and the call; the op is the
    subclass's. Inputs are (batch, time, features)."""
    _gates = 0
    _input_axes = "(batch, time, features)"

    def __init__(self, units, return_sequences=False, return_state=False, go_backwards=False,
                 use_bias=True, input_shape=None, dtype=None):
        super().__init__(input_shape, dtype)
        name = type(self).__name__
        self.units = _checks.integer(units, "units", name, low=1)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.use_bias = bool(use_bias)
        self.kernel = None
        self.recurrent_kernel = None
        self.bias = None

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
        # on the weights' device
        return tensor(np.zeros(self._bias_shape(), self.dtype), device=self.kernel.device)

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
    _input_axes = "(batch, time, features)"

    def __init__(self, layer, merge_mode="concat", backward_layer=None, input_shape=None):
        super().__init__(input_shape)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional: argument 'layer' must be an LSTM or GRU layer, got "
                            f"{type(layer).__name__}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: argument 'merge_mode' must be one of "
                             f"{list(_MERGE_MODES)}, got {merge_mode!r}")
        if backward_layer is None:
            config = dict(layer._init_args, go_backwards=not layer.go_backwards)
            backward_layer = type(layer)(**config)
        elif not isinstance(backward_layer, _Recurrent):
            raise TypeError(f"Bidirectional: argument 'backward_layer' must be an LSTM or GRU "
                            f"layer, got {type(backward_layer).__name__}")
        self.forward_layer = layer
        self.backward_layer = backward_layer
        self.merge_mode = merge_mode
        self._build_from_argument()

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
            y = F.concatenate([y_f, y_b], axis=-1)
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

"""LSTM and GRU ops with autograd, exported by ``fastnn.functional``:
``F.lstm``, ``F.gru`` over whole sequences and ``F.lstm_cell``,
``F.gru_cell`` for one step.

A sequence op records ONE graph node for the whole call, whatever the
sequence length: its backward runs backward through time in the kernel
(csrc/cpu/rnn.cpp, csrc/cuda/rnn.cu) from the gates the forward saved. The
node has several outputs (the outputs of every step and the final states),
and any subset of them may feed the loss. Computation is float32 on the
tensors' device; other float dtypes are converted.
"""
import numpy as np

from . import cuda as _cuda
from . import kernels as _K
from .autograd import Node, _mode
from .functional import _tensor, _xp
from .tensor import _wrap

_ndarray = np.ndarray


def _array(t):
    """The float32 array of tensor t as the kernels take it (None for None)."""
    if t is None:
        return None
    d = t._data
    if type(d) is _ndarray and (d.dtype != np.float32 or not d.flags.c_contiguous):
        d = np.ascontiguousarray(d, dtype=np.float32)
    return d


def _run(cell, fn, x, h0, c0, w_x, w_h, b, step=False):
    """The op: forward through the kernel, and when a gradient is wanted one
    node whose outputs are (out, h, c) (LSTM) or (out, h) (GRU). ``step``:
    x is one step (B, I); out is then not among the outputs."""
    tensors = (x, h0, c0, w_x, w_h, b)
    xp = _xp(fn, *tensors)
    module = _K._C if xp.name == "cpu" else _cuda._C_cuda
    dx, dh0, dc0, dwx, dwh, db = (_array(t) for t in tensors)
    if dx.ndim != (2 if step else 3):
        want = "2-D (batch, features)" if step else "3-D (batch, time, features)"
        raise ValueError(f"{fn}: argument 'x' must be {want}, got shape {tuple(dx.shape)}")
    if step:
        dx = xp.reshape(dx, (dx.shape[0], 1, dx.shape[1]))
    _K._rnn_check(cell, fn, dx, dh0, dc0, dwx, dwh, db)
    lstm = cell == "lstm"
    needs = _mode.enabled and any(t is not None and t._rg for t in tensors)
    out, h, c, gates, state = module.rnn_forward(cell, dx, dh0, dc0, dwx, dwh, db, needs)
    results = [h, c] if lstm else [h]
    if not step:
        results.insert(0, out)
    if not needs:
        return [_wrap(r) for r in results]
    inputs = tuple(t for t in tensors if t is not None)

    def backward(grads):
        # a node of one output (gru_cell) receives its gradient alone
        grads = [grads] if len(results) == 1 else list(grads)
        g_out = None if step else grads.pop(0)
        g_h = grads[0]
        g_c = grads[1] if lstm else None
        if xp.name == "cpu":
            g_out, g_h, g_c = (None if g is None else np.ascontiguousarray(g, dtype=np.float32)
                               for g in (g_out, g_h, g_c))
        need = {"need_" + k: t is not None and t._rg
                for k, t in zip(("dx", "dh0", "dc0", "dw_x", "dw_h", "db"), tensors)}
        got = module.rnn_backward(cell, dx, dh0, dc0, dwx, dwh, out, gates, state, g_out, g_h,
                                  g_c, **need)
        gx = got[0]
        if step and gx is not None:
            gx = xp.reshape(gx, tuple(x._data.shape))
        all_grads = (gx,) + tuple(got[1:])
        return tuple(g for t, g in zip(tensors, all_grads) if t is not None)

    node = Node(inputs, backward, _NAMES[cell, step], n_outputs=len(results))
    outs = [_wrap(r, True, node, i) for i, r in enumerate(results)]
    node.out_versions = tuple((o._ver, o._ver[0]) for o in outs)
    return outs


_NAMES = {("lstm", False): "LstmBackward", ("lstm", True): "LstmCellBackward",
          ("gru", False): "GruBackward", ("gru", True): "GruCellBackward",
          ("gru_reset_after", False): "GruBackward", ("gru_reset_after", True): "GruCellBackward"}


def _optional(t, fn, name):
    return None if t is None else _tensor(t, fn, name)


def _inputs(fn, x, h, c, w_x, w_h, b):
    return (_tensor(x, fn, "x"), _optional(h, fn, "h0"), _optional(c, fn, "c0"),
            _tensor(w_x, fn, "w_x"), _tensor(w_h, fn, "w_h"), _tensor(b, fn, "b"))


def _gru_cell_name(reset_after):
    return "gru_reset_after" if reset_after else "gru"


def lstm(x, h0, c0, w_x, w_h, b):
    """An LSTM over the sequence x (batch, time, I) from the states h0, c0
    (batch, H) (None: zeros). Returns (outputs (batch, time, H), (h, c)), the
    final states h = outputs[:, -1] and c. w_x (I, 4H), w_h (H, 4H), b (4H,),
    gates [i, f, g, o] as Keras. The whole sequence is one graph node."""
    out, h, c = _run("lstm", "lstm", *_inputs("lstm", x, h0, c0, w_x, w_h, b))
    return out, (h, c)


def gru(x, h0, w_x, w_h, b, reset_after=False):
    """A GRU over x (batch, time, I) from h0 (batch, H) (None: zeros).
    Returns (outputs (batch, time, H), h). w_x (I, 3H), w_h (H, 3H), gates
    [z, r, h~], h' = (1 - z) h + z h~. By default the reset gate multiplies h
    before the recurrent product and b is (3H,); with reset_after it
    multiplies the product (cuDNN's form) and b is (2, 3H) = [input bias,
    recurrent bias]."""
    cell = _gru_cell_name(reset_after)
    out, h = _run(cell, "gru", *_inputs("gru", x, h0, None, w_x, w_h, b))
    return out, h


def lstm_cell(x, h, c, w_x, w_h, b):
    """One LSTM step: x (batch, I), states h, c (batch, H) -> (h', c')."""
    h1, c1 = _run("lstm", "lstm_cell", *_inputs("lstm_cell", x, h, c, w_x, w_h, b), step=True)
    return h1, c1


def gru_cell(x, h, w_x, w_h, b, reset_after=False):
    """One GRU step: x (batch, I), h (batch, H) -> h'."""
    (h1,) = _run(_gru_cell_name(reset_after), "gru_cell",
                 *_inputs("gru_cell", x, h, None, w_x, w_h, b), step=True)
    return h1

"""LSTM and GRU: the sequence and cell kernels (fastnn.kernels.lstm, gru,
lstm_cell, gru_cell and their backwards), the autograd ops F.lstm, F.gru,
F.lstm_cell, F.gru_cell, and the layers LSTM, GRU, Bidirectional, Embedding.

Checked against the float64 references of reference/rnn.py:
- forward (outputs, final h and c) and every gradient (x, the initial
  states, all weights and biases) on every SIMD path, for batch 1 and odd,
  hidden 1 and odd, sequence lengths 1, 2 and 500, both GRU forms, with and
  without initial states; the error allowed is a small multiple of float32
  rounding times the size of the array (the weight gradients sum B*T terms,
  so their allowance grows like sqrt(B*T));
- the float32 gradients of the ops against central differences of the
  float64 reference, and the reference's own backward likewise;
- the plain-loop C++ reference; bit-identical results at 1 and 2 threads;
  denormal inputs read as zero (flush-to-zero in the kernel threads);
- one graph node per sequence call, gradients through any subset of the
  outputs; the GPU path of the ops on the NumPy stand-in of _C_cuda;
- the layers' shapes, states, initialisers and Keras semantics
  (return_sequences, return_state, initial_state, go_backwards,
  Bidirectional's merge), and bad input (ValueError naming the shapes).
"""
import math
from typing import NamedTuple

import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import _C, nn
from fastnn import kernels as K
from reference import rnn as ref
from reference.checks import assert_within as _assert_within

EPS32 = float(np.finfo(np.float32).eps)
CELLS = ["lstm", "gru", "gru_reset_after"]


# ================================================================ helpers

class Case(NamedTuple):
    b: int  # batch
    t: int  # time
    i: int  # input features
    h: int  # hidden units

    def __str__(self):
        return f"B{self.b}-T{self.t}-I{self.i}-H{self.h}"


def gates(cell):
    return 4 if cell == "lstm" else 3


def make_inputs(cell, case, seed=0, initial=True):
    """float32 arrays: x, h0, c0 (LSTM), w_x, w_h, b, and output gradients
    dout, dh, dc (LSTM). Weights scaled like Keras's initialisers, so the
    recurrence neither explodes nor saturates over long sequences."""
    rng = np.random.default_rng(seed)
    B, T, I, H = case
    G = gates(cell)

    def f(shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)
    lstm = cell == "lstm"
    return dict(
        x=f((B, T, I)), h0=f((B, H), 0.5) if initial else None,
        c0=f((B, H), 0.5) if initial and lstm else None,
        w_x=f((I, G * H), 1 / math.sqrt(max(I, 1))), w_h=f((H, G * H), 1 / math.sqrt(H)),
        b=f((2, G * H) if cell == "gru_reset_after" else (G * H,), 0.5),
        dout=f((B, T, H)), dh=f((B, H)), dc=f((B, H)) if lstm else None)


def kernel_results(cell, a):
    """(names, forward + backward results) of the fastnn.kernels sequence calls."""
    if cell == "lstm":
        fwd = K.lstm(a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])
        bwd = K.lstm_backward(a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"], a["dout"],
                              a["dh"], a["dc"])
        return ("out", "h", "c", "dx", "dh0", "dc0", "dw_x", "dw_h", "db"), tuple(fwd) + tuple(bwd)
    ra = cell == "gru_reset_after"
    fwd = K.gru(a["x"], a["h0"], a["w_x"], a["w_h"], a["b"], reset_after=ra)
    bwd = K.gru_backward(a["x"], a["h0"], a["w_x"], a["w_h"], a["b"], a["dout"], a["dh"],
                         reset_after=ra)
    return ("out", "h", "dx", "dh0", "dw_x", "dw_h", "db"), tuple(fwd) + tuple(bwd)


def reference_results(cell, a):
    """The same from the float64 reference, in the same order."""
    if cell == "lstm":
        (out, h, c), cache = ref.lstm_forward(a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])
        return (out, h, c) + ref.lstm_backward(a["dout"], a["dh"], a["dc"], cache)
    (out, h), cache = ref.gru_forward(a["x"], a["h0"], a["w_x"], a["w_h"], a["b"],
                                      cell == "gru_reset_after")
    return (out, h) + ref.gru_backward(a["dout"], a["dh"], cache)


def tolerance(name, want, case):
    """float32 rounding for each result, relative to the element and to the
    largest element of the array (a recurrence mixes everything): 64 eps for
    the states and the gradients that flow back step by step, plus
    4 sqrt(B*T) eps for the weight gradients, sums over every step and row."""
    factor = 64.0
    if name in ("dw_x", "dw_h", "db"):
        factor += 4.0 * math.sqrt(case.b * case.t)
    scale = np.abs(want) + np.abs(want).max(initial=0.0)
    return factor * EPS32 * scale + 1e-30


def assert_within(actual, want, tol, what):
    _assert_within(actual, want, tol, what, dtype=np.float32)


def check_against_reference(cell, case, a, got, names, what):
    for name, g, w in zip(names, got, reference_results(cell, a)):
        assert np.all(np.isfinite(g)), f"{what}{name}: not finite"
        assert_within(g, w, tolerance(name, w, case), f"{what}{name}")


def assert_same_bits(actual, want, what):
    assert actual.shape == want.shape, f"{what}: shape {actual.shape}, want {want.shape}"
    assert actual.dtype == want.dtype, f"{what}: dtype {actual.dtype}, want {want.dtype}"
    assert actual.tobytes() == want.tobytes(), (
        f"{what}: not bit-identical, {int((actual != want).sum())} of {actual.size} differ")


def central_differences(objective, arrays, h=1e-6):
    """d objective / d a for every element of every float64 array (perturbed
    in place, then restored)."""
    grads = []
    for a in arrays:
        g = np.empty(a.shape)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + h
            up = objective()
            a[idx] = orig - h
            down = objective()
            a[idx] = orig
            g[idx] = (up - down) / (2 * h)
        grads.append(g)
    return grads


# batch 1 and odd, hidden 1 and odd, T 1, 2 and 500; batches and widths past
# one register tile (6 and 16 rows/units on AVX2, 12 and 32 on AVX-512)
CASES = [Case(1, 1, 1, 1), Case(1, 2, 3, 5), Case(3, 1, 4, 1), Case(5, 2, 7, 17),
         Case(7, 3, 5, 33), Case(13, 5, 9, 13), Case(3, 7, 16, 40), Case(2, 500, 3, 7),
         Case(1, 500, 5, 1), Case(3, 500, 4, 20)]
CASE_PARAMS = [pytest.param(c, id=str(c)) for c in CASES]


# ================================================================ the reference itself

@pytest.mark.parametrize("cell", CELLS)
def test_reference_backward_matches_its_forward_by_central_differences(cell):
    case = Case(2, 3, 3, 2)
    a = {k: (None if v is None else v.astype(np.float64)) for k, v in
         make_inputs(cell, case, seed=1).items()}
    params = [a[k] for k in ("x", "h0", "c0", "w_x", "w_h", "b") if a[k] is not None]

    def objective():
        outs = reference_results_forward(cell, a)
        return float(sum(np.sum(o * g) for o, g in zip(outs, output_grads(cell, a))))
    numeric = central_differences(objective, params)
    analytic = [g for g in reference_results(cell, a)[len(output_grads(cell, a)):]
                if g is not None]
    assert len(analytic) == len(numeric)
    for g, n in zip(analytic, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-7)


def reference_results_forward(cell, a):
    if cell == "lstm":
        return ref.lstm_forward(a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])[0]
    return ref.gru_forward(a["x"], a["h0"], a["w_x"], a["w_h"], a["b"],
                           cell == "gru_reset_after")[0]


def output_grads(cell, a):
    return (a["dout"], a["dh"], a["dc"]) if cell == "lstm" else (a["dout"], a["dh"])


# ================================================================ kernels vs the reference

@pytest.mark.parametrize("case", CASE_PARAMS)
@pytest.mark.parametrize("cell", CELLS)
def test_sequence_forward_and_gradients_match_reference_on_every_path(isa, cell, case):
    a = make_inputs(cell, case)
    names, got = kernel_results(cell, a)
    check_against_reference(cell, case, a, got, names, f"{isa} {cell} {case}: ")


@pytest.mark.parametrize("cell", CELLS)
def test_zero_initial_states_are_the_default(isa, cell):
    case = Case(3, 4, 5, 7)
    a = make_inputs(cell, case, seed=2, initial=False)
    names, got = kernel_results(cell, a)
    check_against_reference(cell, case, a, got, names, f"{isa} {cell} without h0: ")


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_stay_finite_over_500_steps_with_saturating_gates(isa, cell):
    """A large input drive pushes the gates to 0 and 1: the gradient through
    500 steps vanishes, but stays finite and matches. (Large recurrent
    weights would make the recurrence chaotic instead: float32 and float64
    runs then part ways, as any two roundings would.)"""
    case = Case(3, 500, 4, 9)
    a = make_inputs(cell, case, seed=3)
    a["w_x"] = a["w_x"] * np.float32(8)
    names, got = kernel_results(cell, a)
    check_against_reference(cell, case, a, got, names, f"{isa} {cell} saturated: ")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", [Case(1, 1, 1, 1), Case(5, 1, 7, 17), Case(13, 1, 3, 33)], ids=str)
def test_cell_step_kernels_match_reference(isa, cell, case):
    a = make_inputs(cell, case, seed=4)
    x = a["x"][:, 0]
    if cell == "lstm":
        got = K.lstm_cell(x, a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])
        got += K.lstm_cell_backward(x, a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"], a["dh"],
                                    a["dc"])
        (h, c), cache = ref.lstm_cell_forward(x, a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])
        want = (h, c) + ref.lstm_cell_backward(a["dh"], a["dc"], cache)
        names = ("h", "c", "dx", "dh0", "dc0", "dw_x", "dw_h", "db")
    else:
        ra = cell == "gru_reset_after"
        got = (K.gru_cell(x, a["h0"], a["w_x"], a["w_h"], a["b"], reset_after=ra),)
        got += K.gru_cell_backward(x, a["h0"], a["w_x"], a["w_h"], a["b"], a["dh"],
                                   reset_after=ra)
        h, cache = ref.gru_cell_forward(x, a["h0"], a["w_x"], a["w_h"], a["b"], ra)
        want = (h,) + ref.gru_cell_backward(a["dh"], cache)
        names = ("h", "dx", "dh0", "dw_x", "dw_h", "db")
    assert len(got) == len(want)
    for name, g, w in zip(names, got, want):
        assert_within(g, w, tolerance(name, w, case), f"{isa} {cell} cell {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_empty_batch_and_sequence(cell):
    """Batch 0: empty results. Time 0: the initial states pass through, the
    weight gradients are zero."""
    a = make_inputs(cell, Case(0, 3, 4, 5))
    names, got = kernel_results(cell, a)
    for name, g, w in zip(names, got, reference_results(cell, a)):
        assert g.shape == w.shape, (name, g.shape, w.shape)
    a = make_inputs(cell, Case(2, 0, 4, 5))
    names, got = kernel_results(cell, a)
    for name, g, w in zip(names, got, reference_results(cell, a)):
        assert_within(g, w, 0.0, f"T=0 {name}")


# ================================================================ the plain-loop C++ reference

@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", [Case(1, 1, 1, 1), Case(3, 5, 4, 7), Case(7, 3, 9, 33)], ids=str)
def test_c_reference_agrees_with_numpy_reference_and_fast_kernels(cell, case):
    a = make_inputs(cell, case, seed=5)
    args = (cell, a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"], True)
    slow = _C.rnn_forward_reference(*args)
    fast = _C.rnn_forward(*args)
    grads = (a["dout"], a["dh"], a["dc"])
    slow_b = _C.rnn_backward_reference(*args[:6], slow[0], slow[3], slow[4], *grads)
    fast_b = _C.rnn_backward(*args[:6], fast[0], fast[3], fast[4], *grads)
    want = reference_results(cell, a)
    lstm = cell == "lstm"
    fwd_names = ("out", "h", "c") if lstm else ("out", "h")
    bwd_names = ("dx", "dh0", "dc0", "dw_x", "dw_h", "db")
    got_slow = list(slow[:len(fwd_names)]) + [g for n, g in zip(bwd_names, slow_b)
                                              if lstm or n != "dc0"]
    got_fast = list(fast[:len(fwd_names)]) + [g for n, g in zip(bwd_names, fast_b)
                                              if lstm or n != "dc0"]
    names = fwd_names + tuple(n for n in bwd_names if lstm or n != "dc0")
    for name, s, f, w in zip(names, got_slow, got_fast, want):
        assert_within(s, w, tolerance(name, w, case), f"C++ reference {name}")
        assert_within(f, s, 2 * tolerance(name, w, case), f"fast against C++ reference {name}")
    # the saved gates agree too (the backward's inputs)
    assert_within(fast[3], slow[3], 64 * EPS32 * np.abs(slow[3]).max(), "saved gates")


# ================================================================ threads, denormals

# two threads split the rows when there are rows for two register tiles
# each (B >= 48 on every path), the units otherwise (with a barrier per step)
DETERMINISM_CASES = [Case(50, 8, 12, 40), Case(20, 6, 24, 70), Case(13, 4, 9, 130),
                     Case(1, 30, 8, 64)]
REPEATS = 10  # a race shows up in some calls only


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", DETERMINISM_CASES, ids=str)
def test_results_are_the_same_bits_at_1_and_2_threads(isa, cell, case):
    a = make_inputs(cell, case, seed=6)
    with num_threads(1):
        names, one = kernel_results(cell, a)
    check_against_reference(cell, case, a, one, names, f"{isa} 1 thread: ")
    with num_threads(2):
        for call in range(REPEATS):
            _, two = kernel_results(cell, a)
            for name, x2, x1 in zip(names, two, one):
                assert_same_bits(x2, x1, f"{cell} {name} at 2 threads (call {call + 1})")


@pytest.mark.parametrize("cell", CELLS)
def test_denormal_inputs_read_as_zero(isa, cell):
    """Flush-to-zero and denormals-are-zero in the kernel threads: a state of
    denormals gives exactly what a state of zeros gives (and never the slow
    path denormal arithmetic takes)."""
    case = Case(5, 6, 4, 19)
    a = make_inputs(cell, case, seed=7)
    tiny = np.float32(1e-40)
    assert 0 < tiny < np.finfo(np.float32).tiny
    with_zeros = dict(a, h0=np.zeros_like(a["h0"]),
                      c0=None if a["c0"] is None else np.zeros_like(a["c0"]))
    with_tiny = dict(a, h0=np.full_like(a["h0"], tiny),
                     c0=None if a["c0"] is None else np.full_like(a["c0"], -tiny))
    names, z = kernel_results(cell, with_zeros)
    _, d = kernel_results(cell, with_tiny)
    for name, x1, x2 in zip(names, d, z):
        if name not in ("dh0", "dc0"):
            assert_same_bits(x1, x2, f"{cell} {name} from denormal states")


# ================================================================ autograd ops

def tensors(a, keys, requires_grad=True):
    return [None if a[k] is None else fastnn.tensor(a[k].copy(), requires_grad=requires_grad)
            for k in keys]


def run_op(cell, ts):
    x, h0, c0, w_x, w_h, b = ts
    if cell == "lstm":
        out, (h, c) = F.lstm(x, h0, c0, w_x, w_h, b)
        return out, h, c
    out, h = F.gru(x, h0, w_x, w_h, b, reset_after=cell == "gru_reset_after")
    return out, h


INPUT_KEYS = ("x", "h0", "c0", "w_x", "w_h", "b")


@pytest.mark.parametrize("cell", CELLS)
def test_ops_gradients_match_reference(cell):
    case = Case(3, 6, 5, 9)
    a = make_inputs(cell, case, seed=8)
    ts = tensors(a, INPUT_KEYS)
    outs = run_op(cell, ts)
    loss = sum((o * fastnn.tensor(g)).sum() for o, g in zip(outs, output_grads(cell, a)))
    loss.backward()
    want = reference_results(cell, a)
    n = len(outs)
    for o, w, name in zip(outs, want[:n], ("out", "h", "c")):
        assert_within(o.numpy(), w, tolerance(name, w, case), f"F.{cell} {name}")
    grads = [t.grad.numpy() for t in ts if t is not None]
    for name, g, w in zip(("dx", "dh0", "dc0", "dw_x", "dw_h", "db"), grads,
                          [w for w in want[n:] if w is not None]):
        assert_within(g, w, tolerance(name, w, case), f"F.{cell} {name}")


@pytest.mark.parametrize("cell", CELLS)
def test_ops_gradients_match_central_differences(cell):
    """The float32 gradients of the op against central differences of the
    float64 reference forward, on small shapes."""
    case = Case(2, 3, 3, 4)
    a = make_inputs(cell, case, seed=9)
    ts = tensors(a, INPUT_KEYS)
    outs = run_op(cell, ts)
    grads = output_grads(cell, a)
    sum((o * fastnn.tensor(g)).sum() for o, g in zip(outs, grads)).backward()
    a64 = {k: (None if v is None else v.astype(np.float64)) for k, v in a.items()}
    params = [a64[k] for k in INPUT_KEYS if a64[k] is not None]

    def objective():
        return float(sum(np.sum(o * g) for o, g in zip(reference_results_forward(cell, a64),
                                                       output_grads(cell, a64))))
    numeric = central_differences(objective, params)
    for t, n, name in zip([t for t in ts if t is not None], numeric, INPUT_KEYS):
        scale = np.abs(n) + np.abs(n).max()
        assert_within(t.grad.numpy(), n, 1e-4 * scale + 1e-6, f"F.{cell} d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_call_is_one_graph_node(cell):
    """Whatever the length, the outputs hang off one node whose inputs are
    the leaves (so backward never recurses through time steps in Python)."""
    a = make_inputs(cell, Case(2, 300, 3, 4))
    ts = tensors(a, INPUT_KEYS)
    outs = run_op(cell, ts)
    node = outs[0].grad_fn
    assert node is not None and all(o.grad_fn is node for o in outs)
    assert set(map(id, node.inputs)) == {id(t) for t in ts if t is not None}


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_through_any_subset_of_the_outputs(cell):
    case = Case(3, 4, 5, 6)
    a = make_inputs(cell, case, seed=10)
    outs_ref = reference_results_forward(cell, a)
    n = len(outs_ref)
    for used in range(n):
        ts = tensors(a, INPUT_KEYS)
        outs = run_op(cell, ts)
        g = output_grads(cell, a)[used]
        (outs[used] * fastnn.tensor(g)).sum().backward()
        only = [None] * n
        only[used] = g
        if cell == "lstm":
            _, cache = ref.lstm_forward(a["x"], a["h0"], a["c0"], a["w_x"], a["w_h"], a["b"])
            want = ref.lstm_backward(*only, cache)
        else:
            _, cache = ref.gru_forward(a["x"], a["h0"], a["w_x"], a["w_h"], a["b"],
                                       cell == "gru_reset_after")
            want = ref.gru_backward(*only, cache)
        for t, w, name in zip([t for t in ts if t is not None], want, INPUT_KEYS):
            assert_within(t.grad.numpy(), w, tolerance("d" + name, w, case),
                          f"{cell}: gradient through output {used}, d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_cell_ops_match_one_step_of_the_sequence_ops(cell):
    case = Case(4, 1, 5, 6)
    a = make_inputs(cell, case, seed=11)
    ts = tensors(a, INPUT_KEYS)
    x, h0, c0, w_x, w_h, b = ts
    if cell == "lstm":
        h, c = F.lstm_cell(x[:, 0], h0, c0, w_x, w_h, b)
        outs = (h, c)
    else:
        outs = (F.gru_cell(x[:, 0], h0, w_x, w_h, b, reset_after=cell == "gru_reset_after"),)
    loss = sum((o * fastnn.tensor(g)).sum() for o, g in zip(outs, output_grads(cell, a)[1:]))
    loss.backward()
    seq = tensors(a, INPUT_KEYS)
    seq_outs = run_op(cell, seq)
    sum((o * fastnn.tensor(g)).sum() for o, g in zip(seq_outs[1:], output_grads(cell, a)[1:])
        ).backward()
    for o, s in zip(outs, seq_outs[1:]):
        assert_same_bits(o.numpy(), s.numpy(), f"{cell} cell output")
    for t, s, name in zip(ts, seq, INPUT_KEYS):
        if t is not None:
            assert_same_bits(t.grad.numpy(), s.grad.numpy(), f"{cell} cell d{name}")


def test_bidirectional_on_the_gpu_path_matches_the_cpu(fake_gpu):
    """The backward copy's time flip and the concatenation run on the device."""
    x = np.random.default_rng(5).normal(size=(2, 6, 3)).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        fastnn.manual_seed(7)
        bi = nn.Bidirectional(nn.LSTM(4, return_sequences=True))
        bi(x[:1])  # builds the weights on the host
        bi.to(device)
        xt = fastnn.tensor(x, requires_grad=True, device=device)
        y = bi(xt)
        (y * y).sum().backward()
        assert y.device == device
        results.append((y.numpy(), xt.grad.numpy(), bi.forward_layer.kernel.grad.numpy()))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [nn.LSTM, nn.GRU])
def test_a_layer_without_bias_runs_on_the_gpu_path(fake_gpu, layer):
    x = np.random.default_rng(6).normal(size=(2, 4, 3)).astype(np.float32)
    fastnn.manual_seed(8)
    rnn = layer(5, use_bias=False)
    want = rnn(x).numpy()
    rnn.to("cuda")
    got = rnn(fastnn.tensor(x, device="cuda"))
    assert got.device == "cuda"
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_ops_record_nothing_without_grad():
    a = make_inputs("lstm", Case(2, 3, 4, 5))
    ts = tensors(a, INPUT_KEYS, requires_grad=False)
    out, (h, c) = F.lstm(*ts)
    assert out.grad_fn is None and not out.requires_grad
    ts = tensors(a, INPUT_KEYS)
    with fastnn.no_grad():
        out, (h, c) = F.lstm(*ts)
    assert out.grad_fn is None


@pytest.mark.parametrize("cell", CELLS)
def test_ops_run_on_the_gpu_path(fake_gpu, cell):
    """GPU tensors go to _C_cuda's rnn_forward / rnn_backward (here the
    NumPy stand-in), with the CPU's results."""
    case = Case(3, 5, 4, 6)
    a = make_inputs(cell, case, seed=12)
    cpu = tensors(a, INPUT_KEYS)
    gpu = [None if t is None else fastnn.tensor(t.numpy(), requires_grad=True, device="cuda")
           for t in cpu]
    for ts in (cpu, gpu):
        outs = run_op(cell, ts)
        loss = sum((o * fastnn.tensor(g, device=o.device)).sum()
                   for o, g in zip(outs, output_grads(cell, a)))
        loss.backward()
    assert fake_gpu.calls.get("rnn_forward") == 1 and fake_gpu.calls.get("rnn_backward") == 1
    for c, g, name in zip(cpu, gpu, INPUT_KEYS):
        if c is not None:
            assert g.grad.device == "cuda"
            assert_same_bits(g.grad.numpy(), c.grad.numpy(), f"gpu d{name}")


# ================================================================ bad input

@pytest.mark.parametrize("fn", ["kernels", "functional"])
def test_bad_shapes_raise_value_error_naming_them(fn):
    a = make_inputs("lstm", Case(2, 3, 4, 5))
    call = (lambda x, h0, c0, w_x, w_h, b: K.lstm(x, h0, c0, w_x, w_h, b)) if fn == "kernels" \
        else (lambda *args: F.lstm(*[None if v is None else fastnn.tensor(v) for v in args]))
    good = [a[k] for k in INPUT_KEYS]

    def with_(key, value):
        args = list(good)
        args[INPUT_KEYS.index(key)] = value
        return args
    with pytest.raises(ValueError, match=r"'x' must be 3-D.*\(2, 12\)"):
        call(*with_("x", np.zeros((2, 12), np.float32)))
    with pytest.raises(ValueError, match=r"has 6 features but the kernel 'w_x' of shape "
                                         r"\(4, 20\) takes 4"):
        call(*with_("x", np.zeros((2, 3, 6), np.float32)))
    with pytest.raises(ValueError, match=r"'h0' must have shape \(2, 5\).*got \(2, 4\)"):
        call(*with_("h0", np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match=r"'c0' must have shape \(2, 5\).*got \(3, 5\)"):
        call(*with_("c0", np.zeros((3, 5), np.float32)))
    with pytest.raises(ValueError, match=r"'w_h'.*\(units, 4 \* units\), got \(5, 15\)"):
        call(*with_("w_h", np.zeros((5, 15), np.float32)))
    with pytest.raises(ValueError, match=r"'b' must have shape \(20,\), got \(21,\)"):
        call(*with_("b", np.zeros(21, np.float32)))
    with pytest.raises(ValueError, match=r"'b' must have shape \(2, 15\).*got \(15,\)"):
        F.gru(np.zeros((2, 3, 4), np.float32), None, np.zeros((4, 15), np.float32),
              np.zeros((5, 15), np.float32), np.zeros(15, np.float32), reset_after=True)


def test_bindings_check_shapes_and_types_too():
    """The C++ checks stand behind the Python ones: nothing reaches a kernel
    with a shape that would read outside a buffer."""
    a = make_inputs("lstm", Case(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"rnn_forward: argument 'h0' must have shape \(2, 5\)"):
        _C.rnn_forward("lstm", a["x"], a["h0"][:1].copy(), None, a["w_x"], a["w_h"], a["b"], True)
    with pytest.raises(ValueError, match="argument 'cell' must be"):
        _C.rnn_forward("rnn", a["x"], None, None, a["w_x"], a["w_h"], a["b"], True)
    with pytest.raises(TypeError, match="'x' must be float32"):
        _C.rnn_forward("lstm", a["x"].astype(np.float64), None, None, a["w_x"], a["w_h"],
                       a["b"], True)
    out, h, c, g, s = _C.rnn_forward("lstm", a["x"], None, None, a["w_x"], a["w_h"], a["b"], True)
    with pytest.raises(ValueError, match=r"argument 'gates' must have shape \(2, 3, 20\)"):
        _C.rnn_backward("lstm", a["x"], None, None, a["w_x"], a["w_h"], out, g[:, :2].copy(), s,
                        None, None, None)
    with pytest.raises(ValueError, match="argument 'state'.*is required"):
        _C.rnn_backward("lstm", a["x"], None, None, a["w_x"], a["w_h"], out, g, None, None, None,
                        None)


# ================================================================ layers

def test_lstm_layer_initialisers_follow_keras():
    fastnn.manual_seed(0)
    layer = nn.LSTM(8)
    layer(np.zeros((2, 3, 5), np.float32))
    k, r, b = layer.kernel.numpy(), layer.recurrent_kernel.numpy(), layer.bias.numpy()
    assert k.shape == (5, 32) and r.shape == (8, 32) and b.shape == (32,)
    limit = math.sqrt(6 / (5 + 32))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.8 * limit
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-5)  # orthonormal rows
    np.testing.assert_array_equal(b, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])
    gru = nn.GRU(6, reset_after=True)
    gru(np.zeros((1, 2, 3), np.float32))
    assert gru.bias.shape == (2, 18) and not gru.bias.numpy().any()
    assert gru.recurrent_kernel.shape == (6, 18)


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_after"])
def test_layers_compute_the_op_with_their_weights(kind):
    fastnn.manual_seed(1)
    x = np.random.default_rng(13).standard_normal((3, 7, 5)).astype(np.float32)
    layer = nn.LSTM(6, return_sequences=True, return_state=True) if kind == "lstm" else \
        nn.GRU(6, return_sequences=True, return_state=True, reset_after=kind != "gru")
    outs = layer(x)
    if kind == "lstm":
        want = ref.lstm_forward(x, None, None, layer.kernel.numpy(),
                                layer.recurrent_kernel.numpy(), layer.bias.numpy())[0]
    else:
        want = ref.gru_forward(x, None, layer.kernel.numpy(), layer.recurrent_kernel.numpy(),
                               layer.bias.numpy(), kind != "gru")[0]
    assert len(outs) == len(want)
    for o, w in zip(outs, want):
        assert_within(o.numpy(), w, tolerance("out", w, Case(3, 7, 5, 6)), f"{kind} layer")
    last = nn.LSTM(6, input_shape=(None, 5)) if kind == "lstm" else \
        nn.GRU(6, reset_after=kind != "gru", input_shape=(None, 5))
    last.load_state_dict(layer.state_dict())
    assert_same_bits(last(x).numpy(), outs[0].numpy()[:, -1], "return_sequences=False")


def test_layer_initial_state_and_go_backwards():
    fastnn.manual_seed(2)
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    h0, c0 = (rng.standard_normal((2, 4)).astype(np.float32) for _ in range(2))
    layer = nn.LSTM(4, return_sequences=True)
    out = layer(x, initial_state=[h0, c0]).numpy()
    want = ref.lstm_forward(x, h0, c0, layer.kernel.numpy(), layer.recurrent_kernel.numpy(),
                            layer.bias.numpy())[0][0]
    assert_within(out, want, tolerance("out", want, Case(2, 5, 3, 4)), "initial_state")
    back = nn.LSTM(4, return_sequences=True, go_backwards=True, input_shape=(None, 3))
    back.load_state_dict(layer.state_dict())
    # Keras: the reversed sequence is processed, outputs in processing order
    assert_same_bits(back(x).numpy(), layer(np.ascontiguousarray(x[:, ::-1])).numpy(),
                     "go_backwards")
    with pytest.raises(ValueError, match=r"initial_state\[1\] \(c\) must have shape \(2, 4\).*"
                                         r"got \(2, 3\)"):
        layer(x, initial_state=[h0, np.zeros((2, 3), np.float32)])
    with pytest.raises(ValueError, match="'initial_state' must be a list of 2"):
        layer(x, initial_state=[h0])


@pytest.mark.parametrize("layer_cls", [nn.LSTM, nn.GRU])
def test_layers_reject_bad_input_shapes(layer_cls):
    layer = layer_cls(4)
    with pytest.raises(ValueError, match=r"expected a 3-D input.*got shape \(2, 5\)"):
        layer(np.zeros((2, 5), np.float32))
    layer(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(batch, time, 3\).*built for 3.*got shape \(2, 5, 4\)"):
        layer(np.zeros((2, 5, 4), np.float32))


def test_bidirectional_concatenates_forward_and_time_ordered_backward():
    fastnn.manual_seed(3)
    x = np.random.default_rng(15).standard_normal((2, 6, 3)).astype(np.float32)
    bi = nn.Bidirectional(nn.GRU(5, return_sequences=True, return_state=True))
    y, h_f, h_b = bi(x)
    assert y.shape == (2, 6, 10) and h_f.shape == h_b.shape == (2, 5)
    f, b = bi.forward_layer, bi.backward_layer
    assert b.go_backwards and not f.go_backwards
    out_f = ref.gru_forward(x, None, f.kernel.numpy(), f.recurrent_kernel.numpy(),
                            f.bias.numpy())[0][0]
    out_b = ref.gru_forward(x[:, ::-1], None, b.kernel.numpy(), b.recurrent_kernel.numpy(),
                            b.bias.numpy())[0][0]
    want = np.concatenate([out_f, out_b[:, ::-1]], axis=-1)
    assert_within(y.numpy(), want, tolerance("out", want, Case(2, 6, 3, 5)), "Bidirectional")
    assert_within(h_b.numpy(), out_b[:, -1], tolerance("out", out_b[:, -1], Case(2, 6, 3, 5)),
                  "backward state")
    y.sum().backward()
    assert all(p.grad is not None for p in bi.parameters()) and len(bi.parameters()) == 6
    last = nn.Bidirectional(nn.LSTM(4), merge_mode="sum")
    assert last(x).shape == (2, 4)
    with pytest.raises(ValueError, match="merge_mode"):
        nn.Bidirectional(nn.LSTM(4), merge_mode="max")
    with pytest.raises(TypeError, match="LSTM or GRU"):
        nn.Bidirectional(nn.Dense(4))


def test_stacked_layers_train_end_to_end():
    """Embedding -> LSTM -> GRU -> Dense as one Sequential: every weight gets
    a gradient, and a step of SGD lowers the loss."""
    fastnn.manual_seed(4)
    model = nn.Sequential([nn.Embedding(12, 8), nn.LSTM(16, return_sequences=True),
                           nn.GRU(8), nn.Dense(3)])
    rng = np.random.default_rng(16)
    tokens = rng.integers(0, 12, (6, 9))
    labels = rng.integers(0, 3, 6)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(tokens), labels)
        model.zero_grad()
        loss.backward()
        assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all()
                   for p in model.parameters())
        with fastnn.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
        losses.append(float(loss.item()))
    assert losses[-1] < losses[0]


def test_embedding_gathers_rows_and_adds_gradients_of_repeats():
    fastnn.manual_seed(5)
    emb = nn.Embedding(7, 3)
    w = emb.embeddings.numpy()
    assert np.abs(w).max() <= 0.05
    idx = np.array([[1, 4, 1], [6, 0, 1]])
    y = emb(idx)
    np.testing.assert_array_equal(y.numpy(), w[idx])
    y.sum().backward()
    want = np.zeros_like(w)
    np.add.at(want, idx, 1.0)
    np.testing.assert_array_equal(emb.embeddings.grad.numpy(), want)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 7\), got 7"):
        emb(np.array([[7]]))
    with pytest.raises(TypeError, match="integer indices"):
        emb(np.array([[0.5]]))


def test_bidirectional_runs_on_the_gpu_path(fake_gpu):
    """The time reversal on GPU tensors (a permutation product there) gives
    the CPU's outputs and gradients."""
    x = np.random.default_rng(17).standard_normal((3, 5, 4)).astype(np.float32)
    fastnn.manual_seed(6)
    cpu = nn.Bidirectional(nn.LSTM(3, return_sequences=True))
    gpu = nn.Bidirectional(nn.LSTM(3, return_sequences=True))
    cpu(x), gpu(x)  # builds the weights
    gpu.load_state_dict(cpu.state_dict())
    gpu.to("cuda")
    y_cpu = cpu(x)
    y_gpu = gpu(fastnn.tensor(x, device="cuda"))
    assert y_gpu.device == "cuda"
    assert_within(y_gpu.numpy(), y_cpu.numpy(), 1e-6, "Bidirectional on the GPU path")
    y_cpu.sum().backward()
    y_gpu.sum().backward()
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        assert_within(q.grad.numpy(), p.grad.numpy(), 1e-5, f"d{name} on the GPU path")

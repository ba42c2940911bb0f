"""The LSTM and GRU kernels of fastnn._C_cuda (csrc/cuda/rnn.cu) against the
float64 references of reference/rnn.py and the CPU kernels of fastnn._C,
with the same arguments; and F.lstm / F.gru on GPU tensors.

Tolerances are test_rnn.py's: float32 rounding times the size of each
array, growing like sqrt(B*T) for the weight gradients (sums over every
step and row). The GPU's tanh and exp are not the CPU's polynomials, and
its GEMM sums in another order, so GPU and CPU agree to rounding, not bit
for bit; two GPU runs agree bit for bit.

Every test needs a GPU and is skipped without one.
"""
import numpy as np
import pytest

import fastnn
from fastnn import _C, cuda
from test_rnn import (CELLS, INPUT_KEYS, Case, make_inputs, output_grads, reference_results,
                      run_op, tensors, tolerance)
from reference.checks import assert_within

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU available")

if cuda.is_built():
    from fastnn import _C_cuda as G
else:
    G = None


def dev(x):
    return None if x is None else G.DeviceArray.from_numpy(np.asarray(x, dtype=np.float32))


def host(d):
    return None if d is None else d.numpy()


NEEDS = ("need_dx", "need_dh0", "need_dc0", "need_dw_x", "need_dw_h", "need_db")


def gpu_results(cell, a, need=(True,) * 6):
    """(forward (out, h[, c]), backward grads) from _C_cuda, on the host."""
    args = [dev(a[k]) for k in INPUT_KEYS]
    out, h, c, gates, state = G.rnn_forward(cell, *args, True)
    grads = G.rnn_backward(cell, *args[:5], out, gates, state, dev(a["dout"]), dev(a["dh"]),
                           dev(a["dc"]), **dict(zip(NEEDS, need)))
    fwd = (out, h, c) if cell == "lstm" else (out, h)
    return tuple(host(r) for r in fwd), tuple(host(g) for g in grads)


CASES = [Case(1, 1, 1, 1), Case(1, 2, 3, 5), Case(3, 1, 4, 1), Case(5, 2, 7, 17),
         Case(7, 3, 5, 33), Case(13, 5, 9, 13), Case(3, 7, 16, 40), Case(2, 500, 3, 7),
         Case(1, 500, 5, 1), Case(64, 20, 32, 70), Case(130, 3, 70, 130)]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("cell", CELLS)
def test_gpu_forward_and_gradients_match_reference(cell, case):
    a = make_inputs(cell, case)
    fwd, grads = gpu_results(cell, a)
    got = list(fwd) + [g for g in grads if g is not None]
    names = (("out", "h", "c") if cell == "lstm" else ("out", "h")) + tuple(
        n for n in ("dx", "dh0", "dc0", "dw_x", "dw_h", "db") if cell == "lstm" or n != "dc0")
    want = reference_results(cell, a)
    assert len(got) == len(want)
    for name, g, w in zip(names, got, want):
        assert np.isfinite(g).all(), f"{cell} {name}: not finite"
        assert_within(g, w, tolerance(name, w, case), f"GPU {cell} {case} {name}",
                      dtype=np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_gpu_matches_cpu_and_repeats_bit_for_bit(cell):
    case = Case(9, 12, 10, 24)
    a = make_inputs(cell, case, seed=3)
    args = [a[k] for k in INPUT_KEYS]
    cpu = _C.rnn_forward(cell, *args, True)
    cpu_g = _C.rnn_backward(cell, *args[:5], cpu[0], cpu[3], cpu[4], a["dout"], a["dh"], a["dc"])
    first = gpu_results(cell, a)
    again = gpu_results(cell, a)
    for x, y in zip(first[0] + first[1], again[0] + again[1]):
        if x is not None:
            assert x.tobytes() == y.tobytes(), "two GPU runs differ"
    want = reference_results(cell, a)
    for g, c, w in zip(list(first[0]) + [g for g in first[1] if g is not None],
                       list(cpu[:len(first[0])]) + [g for g in cpu_g if g is not None], want):
        assert_within(g, c, 2 * tolerance("dw_x", w, case), f"GPU against CPU ({cell})")


@pytest.mark.parametrize("cell", CELLS)
def test_gpu_zero_states_empty_batch_and_sequence(cell):
    for case, initial in ((Case(3, 4, 5, 7), False), (Case(0, 3, 4, 5), True),
                          (Case(2, 0, 4, 5), True)):
        a = make_inputs(cell, case, seed=4, initial=initial)
        fwd, grads = gpu_results(cell, a)
        got = list(fwd) + [g for g in grads if g is not None]
        for g, w in zip(got, reference_results(cell, a)):
            assert g.shape == w.shape
            assert_within(g, w, tolerance("dw_x", w, case), f"GPU {cell} {case}",
                          dtype=np.float32)


def test_gpu_backward_returns_only_what_is_asked():
    a = make_inputs("lstm", Case(2, 3, 4, 5))
    for k in range(6):
        need = [False] * 6
        need[k] = True
        _, grads = gpu_results("lstm", a, need)
        assert [g is not None for g in grads] == need


def test_gpu_bad_shapes_raise_value_error():
    a = make_inputs("gru", Case(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"'h0' must have shape \(2, 5\)"):
        G.rnn_forward("gru", dev(a["x"]), dev(np.zeros((2, 4))), None, dev(a["w_x"]),
                      dev(a["w_h"]), dev(a["b"]), False)
    with pytest.raises(ValueError, match="has 4 features but the kernel"):
        G.rnn_forward("gru", dev(a["x"]), None, None, dev(np.zeros((3, 15))), dev(a["w_h"]),
                      dev(a["b"]), False)


@pytest.mark.parametrize("cell", CELLS)
def test_ops_on_gpu_tensors_match_the_cpu(cell):
    case = Case(4, 6, 5, 8)
    a = make_inputs(cell, case, seed=5)
    cpu = tensors(a, INPUT_KEYS)
    gpu = [None if t is None else fastnn.tensor(t.numpy(), requires_grad=True, device="cuda")
           for t in cpu]
    for ts in (cpu, gpu):
        outs = run_op(cell, ts)
        sum((o * fastnn.tensor(g, device=o.device)).sum()
            for o, g in zip(outs, output_grads(cell, a))).backward()
    for c, g, name in zip(cpu, gpu, INPUT_KEYS):
        if c is not None:
            assert g.grad.device == "cuda"
            assert_within(g.grad.numpy(), c.grad.numpy(), 2 * tolerance("dw_x", c.grad.numpy(),
                                                                        case), f"d{name}")


def test_layers_build_and_run_on_the_gpu():
    x = fastnn.tensor(make_inputs("lstm", Case(3, 5, 4, 6))["x"], device="cuda")
    model = fastnn.nn.Sequential([fastnn.nn.LSTM(8, return_sequences=True),
                                  fastnn.nn.GRU(6, reset_after=True)])
    y = model(x)
    assert y.device == "cuda" and y.shape == (3, 6)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.device == "cuda" for p in model.parameters())

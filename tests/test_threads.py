"""Thread safety: the kernels release the GIL, and four Python threads
calling conv, gemm, the LSTM and an optimizer at once, each on its own
tensors, get the bits of the serial run; afterwards the per-thread
workspaces and the thread pool still give the serial bits."""
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import kernels as K
from fastnn import optim
from conftest import num_threads


def _rng(seed):
    return np.random.default_rng(seed)


def _conv_work(seed):
    r = _rng(seed)
    x = r.normal(size=(8, 17, 19, 16)).astype(np.float32)
    w = r.normal(size=(3, 3, 16, 24)).astype(np.float32)
    b = r.normal(size=24).astype(np.float32)

    def run():
        y = K.conv2d(x, w, b, stride=1, padding="same")
        dx, dw, db = K.conv2d_backward(x, w, y, stride=1, padding="same")
        return [y, dx, dw, db]
    return run


def _gemm_work(seed):
    r = _rng(seed)
    a = r.normal(size=(301, 257)).astype(np.float32)
    b = r.normal(size=(257, 193)).astype(np.float32)

    def run():
        c = K.gemm(a, b)
        return [c, K.gemm(a, c, trans_a=True, alpha=0.5)]
    return run


def _rnn_work(seed):
    r = _rng(seed)
    x = r.normal(size=(6, 23, 12)).astype(np.float32)
    w_x = (0.3 * r.normal(size=(12, 64))).astype(np.float32)
    w_h = (0.3 * r.normal(size=(16, 64))).astype(np.float32)
    b = r.normal(size=64).astype(np.float32)

    def run():
        out, h, c = K.lstm(x, None, None, w_x, w_h, b)
        grads = K.lstm_backward(x, None, None, w_x, w_h, b, out)
        return [out, h, c, *grads]
    return run


def _optim_work(seed):
    r = _rng(seed)
    start = [r.normal(size=s).astype(np.float32) for s in ((129, 33), (33,), (1000,))]
    grads = [[r.normal(size=p.shape).astype(np.float32) for p in start] for _ in range(4)]

    def run():
        params = [fastnn.tensor(p.copy(), requires_grad=True) for p in start]
        opts = [optim.Adam(params[:2], lr=1e-2, weight_decay=0.01),
                optim.SGD(params[2:], lr=0.1, momentum=0.9)]
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = fastnn.tensor(g)
            for o in opts:
                o.step()
        return [p.numpy().copy() for p in params]
    return run


WORK = {"conv": _conv_work, "gemm": _gemm_work, "rnn": _rnn_work, "optim": _optim_work}


def _assert_same_bits(got, want, what):
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, (what, i)
        assert np.array_equal(g.view(np.uint32), w.view(np.uint32)), \
            f"{what}: result {i} differs from the serial run"


@pytest.mark.parametrize("pool", [1, 2], ids=lambda n: f"{n}omp")
def test_four_threads_give_the_serial_bits(pool):
    with num_threads(pool):
        runs = {name: make(seed) for seed, (name, make) in enumerate(WORK.items())}
        serial = {name: run() for name, run in runs.items()}
        results, errors = {}, []
        barrier = threading.Barrier(len(runs))

        def worker(name):
            try:
                barrier.wait()
                results[name] = [runs[name]() for _ in range(3)]
            except BaseException as e:  # reported below, not lost in the thread
                errors.append((name, e))
        threads = [threading.Thread(target=worker, args=(n,)) for n in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads), "a worker thread hangs"
        assert not errors, errors
        for name, repeats in results.items():
            for k, got in enumerate(repeats):
                _assert_same_bits(got, serial[name], f"{name}, threaded run {k}")
        # the workspaces and the pool are still right for serial calls
        assert fastnn.get_num_threads() == pool
        for name, run in runs.items():
            _assert_same_bits(run(), serial[name], f"{name}, serial run after the threads")


def test_kernels_release_the_gil():
    """While one thread is inside a long conv2d, a Python thread keeps
    running: the longest pause between its ticks stays well below the
    kernel's duration (it would be the whole duration with the GIL held)."""
    r = _rng(7)
    x = r.normal(size=(96, 48, 48, 32)).astype(np.float32)  # 19 GFLOP: >= 0.15 s on one core
    w = r.normal(size=(5, 5, 32, 64)).astype(np.float32)
    with num_threads(1):
        start = time.perf_counter()
        K.conv2d(x, w)
        duration = time.perf_counter() - start
        ticks, stop = [], threading.Event()

        def ticker():
            while not stop.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.001)
        t = threading.Thread(target=ticker)
        t.start()
        time.sleep(0.05)
        start = time.perf_counter()
        K.conv2d(x, w)
        end = time.perf_counter()
        stop.set()
        t.join()
    during = [s for s in ticks if start <= s <= end]
    gaps = np.diff([start] + during + [end])
    assert duration > 0.1, f"the conv took {duration:.3f} s: too short to tell"
    assert gaps.max() < 0.5 * (end - start), (
        f"the ticker paused {gaps.max():.3f} s of a {end - start:.3f} s conv: the GIL was held")

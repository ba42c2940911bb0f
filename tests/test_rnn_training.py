"""End to end: an LSTM and a GRU of fastnn.nn layers learn the adding problem
with SGD written out here (momentum 0.9 and the gradients' global norm
clipped at 1, as recurrent networks are usually trained), the acceptance
test of the recurrent-layer issue.

The adding problem: each step carries a random value in [0, 1) and a marker;
exactly two steps are marked, one in each half of the sequence, and the
target is the sum of their values. The marked values are at least T/2 steps
apart, so the network must hold one in its state while it reads on. The
trivial baseline, always predicting the mean sum 1, has a mean squared error
of 1/6 (the variance of a sum of two uniforms); a network that learned the
task is far below it.
"""
import numpy as np
import pytest

import fastnn
import fastnn.functional as F
from conftest import num_threads
from fastnn import nn


def adding_problem(n, steps, rng):
    values = rng.uniform(0.0, 1.0, (n, steps))
    markers = np.zeros((n, steps))
    rows = np.arange(n)
    markers[rows, rng.integers(0, steps // 2, n)] = 1.0
    markers[rows, rng.integers(steps // 2, steps, n)] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values * markers).sum(axis=1, keepdims=True).astype(np.float32)
    return x, y


def sgd_step(params, velocities, lr, momentum=0.9, max_norm=1.0):
    """p -= lr * v, v = momentum * v + g * min(1, max_norm / |g|), |g| the
    norm of all the gradients together."""
    grads = [p.grad.numpy() for p in params]
    norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)))
    scale = min(1.0, max_norm / (norm + 1e-12))
    with fastnn.no_grad():
        for p, g, v in zip(params, grads, velocities):
            v *= momentum
            v += g * scale
            p -= lr * fastnn.tensor(v)


@pytest.mark.parametrize("layer", ["lstm", "gru"])
def test_recurrent_network_learns_the_adding_problem(layer):
    fastnn.manual_seed(0)
    rng = np.random.default_rng(1)
    steps, units = 20, 32
    x_test, y_test = adding_problem(1000, steps, np.random.default_rng(2))
    recurrent = nn.LSTM(units) if layer == "lstm" else nn.GRU(units)
    model = nn.Sequential([recurrent, nn.Dense(1)])
    model(x_test[:1])  # builds the weights
    velocities = [np.zeros(p.shape, np.float32) for p in model.parameters()]
    # one thread: batches this small train faster without waking a second
    with num_threads(1):
        for _ in range(1500):
            x, y = adding_problem(32, steps, rng)
            loss = F.mse_loss(model(fastnn.tensor(x)), fastnn.tensor(y))
            model.zero_grad()
            loss.backward()
            sgd_step(model.parameters(), velocities, lr=0.05)
        with fastnn.no_grad():
            pred = model(fastnn.tensor(x_test)).numpy()
    mse = float(np.mean((pred - y_test) ** 2))
    baseline = float(np.mean((y_test - 1.0) ** 2))  # always the mean sum
    assert baseline > 0.14, baseline
    assert mse < baseline / 20, (mse, baseline)

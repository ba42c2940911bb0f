"""Keras's probability losses in float64 NumPy, the oracle of test_losses.py.

Each loss is the mean over the batch (every axis but the class axis) and
has ``<loss>_forward(...) -> value`` and ``<loss>_backward(dout, ...) ->
(d_prediction, d_target)``. Probabilities are clipped to [lo, hi] (Keras's
[1e-7, 1 - 1e-7], as the caller's dtype rounds them); the gradient passes
where lo <= p <= hi. Nothing here imports fastnn.
"""
import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _inside(q, lo, hi):
    return ((q >= lo) & (q <= hi)).astype(np.float64)


# ---------------------------------------------------------------- binary
def bce_forward(p, t, lo, hi):
    """mean(-(t log c + (1 - t) log(1 - c))), c = clip(p, lo, hi)."""
    c = np.clip(_f64(p), lo, hi)
    t = _f64(t)
    return float(np.mean(-(t * np.log(c) + (1 - t) * np.log(1 - c))))


def bce_backward(dout, p, t, lo, hi):
    p, t = _f64(p), _f64(t)
    c = np.clip(p, lo, hi)
    scale = float(dout) / p.size
    dp = scale * (-t / c + (1 - t) / (1 - c)) * _inside(p, lo, hi)
    dt = scale * -(np.log(c) - np.log(1 - c))
    return dp, dt


def bce_logits_forward(x, t):
    """mean(max(x, 0) - x t + log(1 + exp(-|x|))): -t log s(x) - (1-t) log(1-s(x))."""
    x, t = _f64(x), _f64(t)
    return float(np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))))


def bce_logits_backward(dout, x, t):
    x, t = _f64(x), _f64(t)
    scale = float(dout) / x.size
    e = np.exp(-np.abs(x))
    sigmoid = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return scale * (sigmoid - t), scale * -x


# ---------------------------------------------------------------- categorical
def _rows(p):
    p = _f64(p)
    return p.reshape(-1, p.shape[-1])


def categorical_forward(p, t, lo, hi):
    """mean over rows of -sum(t log clip(p / sum(p)))."""
    p, t = _rows(p), _rows(t)
    c = np.clip(p / p.sum(axis=1, keepdims=True), lo, hi)
    return float(np.mean(-(t * np.log(c)).sum(axis=1)))


def categorical_backward(dout, p, t, lo, hi):
    shape = np.shape(p)
    p, t = _rows(p), _rows(t)
    s = p.sum(axis=1, keepdims=True)
    q = p / s
    c = np.clip(q, lo, hi)
    scale = float(dout) / len(p)
    dq = scale * -t / c * _inside(q, lo, hi)
    # through q = p / s: dp_k = dq_k / s - sum_j(dq_j p_j) / s^2
    dp = dq / s - (dq * p).sum(axis=1, keepdims=True) / s ** 2
    dt = scale * -np.log(c)
    return dp.reshape(shape), dt.reshape(shape)


def sparse_categorical_forward(p, labels, lo, hi):
    p = _rows(p)
    return categorical_forward(p, np.eye(p.shape[1])[np.asarray(labels).reshape(-1)], lo, hi)


def sparse_categorical_backward(dout, p, labels, lo, hi):
    shape = np.shape(p)
    p = _rows(p)
    onehot = np.eye(p.shape[1])[np.asarray(labels).reshape(-1)]
    return (categorical_backward(dout, p, onehot, lo, hi)[0].reshape(shape),)


def categorical_logits_forward(x, t):
    """mean over rows of -sum(t log_softmax(x))."""
    x, t = _rows(x), _rows(t)
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(np.mean(-(t * logp).sum(axis=1)))


def categorical_logits_backward(dout, x, t):
    shape = np.shape(x)
    x, t = _rows(x), _rows(t)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    softmax = e / e.sum(axis=1, keepdims=True)
    logp = z - np.log(e.sum(axis=1, keepdims=True))
    scale = float(dout) / len(x)
    dx = scale * (t.sum(axis=1, keepdims=True) * softmax - t)
    return dx.reshape(shape), (scale * -logp).reshape(shape)

"""Losses, in PyTorch's argument order ``loss(input, target)``, each the
batch mean: cross_entropy, mse_loss, and Keras's probability losses
binary_cross_entropy, sparse_categorical_crossentropy,
categorical_crossentropy (``fastnn.losses`` wraps them in Keras's order)."""
import math

import numpy as np

from .. import cuda as _cuda
from ._plumbing import Tensor, _mode, _ndarray, _record, _tensor, _wrap, _xp
from .activations import clip, log, log_softmax, made_from
from .arithmetic import add, div, mul, neg, sub
from .reductions import mean, sum
from .shapes import reshape

__all__ = ["EPSILON", "binary_cross_entropy", "categorical_crossentropy", "cross_entropy",
           "mse_loss", "sparse_categorical_crossentropy"]


def _host_labels(labels, fn):
    """labels as an integer host array (before any shape check)."""
    d = labels._data if isinstance(labels, Tensor) else labels
    if _cuda.is_device_array(d):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array on the host, got a "
                        "DeviceArray")
    try:
        d = np.asarray(d)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: argument 'labels' must be an integer array") from None
    if d.dtype.kind not in "iu":
        raise TypeError(f"{fn}: argument 'labels' must hold integers (int64, int32 or uint8), "
                        f"got dtype {d.dtype}")
    return d


def _labels(labels, n, fn):
    d = _host_labels(labels, fn)
    if d.shape != (n,):
        raise ValueError(f"{fn}: argument 'labels' must have shape ({n},) to match the logits, "
                         f"got {d.shape}")
    # a private copy: the backward must see the labels of the forward
    return np.array(d, dtype=np.int64, order="C")


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label]: logits (batch,
    classes), integer labels (batch,). Softmax and the loss are one fused
    kernel, exact for extreme logits."""
    x = _tensor(logits, "cross_entropy", "logits")
    xp = _xp("cross_entropy", x)
    d = x._data
    if d.dtype.kind in "iub":  # integer or bool logits compute in float32
        d = d.astype(np.float32)
    if d.ndim != 2:
        raise ValueError(f"cross_entropy: argument 'logits' must be 2-D (batch, classes), got "
                         f"shape {tuple(d.shape)}")
    lab = _labels(labels, d.shape[0], "cross_entropy")
    n = d.shape[0]
    out, prob = xp.cross_entropy(d, lab)
    if not (_mode.enabled and x._rg):
        return _wrap(out)
    return _record(out, (x,),
                   lambda g: (xp.cross_entropy_backward(prob, lab, xp.to_float(g) / n if n else 0.0),),
                   "CrossEntropyBackward")


def mse_loss(y, t):
    """Mean of (y - t) ** 2 over all elements; y and t of one shape."""
    y = _tensor(y, "mse_loss", "y")
    t = _tensor(t, "mse_loss", "t")
    xp = _xp("mse_loss", y, t)
    dy, dt = y._data, t._data
    if tuple(dy.shape) != tuple(dt.shape):
        raise ValueError(f"mse_loss: arguments 'y' and 't' must have the same shape, got "
                         f"{tuple(dy.shape)} and {tuple(dt.shape)}")
    dy, dt = xp.promote(dy, dt)
    diff = xp.sub(dy, dt)
    if diff.dtype.kind != "f":
        diff = diff.astype(np.float32)
    n = math.prod(diff.shape)
    out = xp.mul(xp.sum(xp.mul(diff, diff), tuple(range(diff.ndim)), False),
                 1.0 / n if n else float("nan"))
    out = xp.result(out, diff.dtype)
    if not (_mode.enabled and (y._rg or t._rg)):
        return _wrap(out)

    def backward(g):
        gy = xp.mul(diff, 2.0 * xp.to_float(g) / n if n else 0.0)
        return (gy if y._rg else None, xp.neg(gy) if t._rg else None)
    return _record(out, (y, t), backward, "MseLossBackward")


# ---------------------------------------------------------------- Keras's probability losses
# Keras clips probabilities to [eps, 1 - eps] (its backend.epsilon()) before
# taking logarithms, so a probability of exactly 0 or 1 gives a finite loss
# and gradient.
EPSILON = 1e-7

# A probability loss on the output of F.softmax (over the last axis) or
# F.sigmoid is computed from the logits instead, as Keras's TensorFlow
# backend does. That is exact for any logits, where log(clip(p)) flattens
# once p underflows and its gradient vanishes.


def _same_shape(p, t, fn, p_name, t_name):
    if tuple(p.shape) != tuple(t.shape):
        raise ValueError(f"{fn}: arguments '{p_name}' and '{t_name}' must have the same shape, "
                         f"got {tuple(p.shape)} and {tuple(t.shape)}")


def _float_target(t, like, fn, name):
    """t as a tensor of like's float dtype, on like's device: targets that
    need no gradient (data) are converted and moved."""
    t = _tensor(t, fn, name)
    if t._rg or type(t._data) is not _ndarray:
        return t
    if t.dtype != like.dtype:
        t = _wrap(t._data.astype(like.dtype))
    return t if type(like._data) is _ndarray else t.to(like.device)


def _float_probs(p, fn, name):
    p = _tensor(p, fn, name)
    if p.dtype.kind != "f":
        p = _wrap(p._data.astype(np.float32))
    return p


def binary_cross_entropy(p, t, from_logits=False):
    """Mean over all elements of -(t log p + (1 - t) log(1 - p)): Keras's
    binary_crossentropy averaged over the batch. p: probabilities, clipped to
    [1e-7, 1 - 1e-7] first as Keras does (the gradient is 0 where the clip
    bites); t: targets in [0, 1] of p's shape. With from_logits, p are logits
    and the loss is max(p, 0) - p t + log(1 + exp(-|p|)), exact for any
    logits; the output of F.sigmoid is taken that way too, through its input
    (as Keras's TensorFlow backend does)."""
    fn = "binary_cross_entropy"
    p = _float_probs(p, fn, "p")
    t = _float_target(t, p, fn, "t")
    _same_shape(p, t, fn, "p", "t")
    if not from_logits:
        logits = made_from(p, "sigmoid")
        if logits is None:
            pc = clip(p, EPSILON, 1.0 - EPSILON)
            return neg(mean(add(mul(t, log(pc)), mul(sub(1.0, t), log(sub(1.0, pc))))))
        p = logits
    return _bce_with_logits(p, t, fn)


def _bce_with_logits(x, t, fn):
    xp = _xp(fn, x, t)
    dx, dt = x._data, t._data
    n = math.prod(dx.shape)
    # max(x, 0) - x t + log1p(exp(-|x|)): no exp overflows, no log(0)
    soft = xp.exp(xp.neg(xp.abs(dx)))
    soft = xp.log1p(soft)
    terms = xp.add(xp.sub(xp.clip(dx, 0.0, None), xp.mul(dx, dt)), soft)
    out = xp.mul(xp.sum(terms, tuple(range(dx.ndim)), False), 1.0 / n if n else float("nan"))
    out = xp.result(out, dx.dtype)
    if not (_mode.enabled and (x._rg or t._rg)):
        return _wrap(out)

    def backward(g):
        scale = xp.to_float(g) / n if n else 0.0
        gx = xp.mul(xp.sub(xp.activation("sigmoid", dx), dt), scale) if x._rg else None
        gt = xp.mul(dx, -scale) if t._rg else None
        return gx, gt
    return _record(out, (x, t), backward, "BinaryCrossEntropyBackward")


def _class_labels(labels, shape, fn):
    """Integer labels of shape ``shape`` (or with a trailing 1, as Keras
    accepts), flattened, as an int64 array in [0, classes)."""
    d = _host_labels(labels, fn)
    lead, classes = tuple(shape[:-1]), shape[-1]
    if d.shape != lead and d.shape != lead + (1,):
        raise ValueError(f"{fn}: argument 'labels' must have shape {lead} to match the "
                         f"predictions of shape {tuple(shape)}, got {d.shape}")
    d = np.array(d.reshape(-1), dtype=np.int64)
    bad = (d < 0) | (d >= classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{fn}: argument 'labels' must hold class indices in [0, {classes}), "
                         f"got {d[i]} at position {i}")
    return d


def _class_probs(p, fn, name):
    p = _float_probs(p, fn, name)
    if p.ndim < 2:
        raise ValueError(f"{fn}: argument '{name}' must be at least 2-D (batch, classes), got "
                         f"shape {p.shape}")
    return p


def _rows(x):
    """x as (rows, classes)."""
    return x if x.ndim == 2 else reshape(x, (-1, x.shape[-1]))


def _clipped_log_probs(p):
    """log(clip(p / sum(p))) over the last axis: Keras renormalises the rows
    and clips to [eps, 1 - eps]."""
    q = div(p, sum(p, axis=-1, keepdims=True))
    return log(clip(q, EPSILON, 1.0 - EPSILON))


def sparse_categorical_crossentropy(probs, labels, from_logits=False):
    """Mean over the batch of -log probs[label]: Keras's
    sparse_categorical_crossentropy. probs: (..., classes) probabilities,
    each row renormalised to sum 1 and clipped to [1e-7, 1 - 1e-7] as Keras
    does; labels: integer class indices of shape (...). With from_logits,
    probs are logits: the fused softmax + cross-entropy of F.cross_entropy.
    The output of F.softmax (over the last axis) is taken as its logits too,
    as Keras's TensorFlow backend does, so the loss is exact for any logits."""
    fn = "sparse_categorical_crossentropy"
    p = _class_probs(probs, fn, "probs")
    lab = _class_labels(labels, p.shape, fn)
    logits = p if from_logits else made_from(p, "softmax")
    if logits is not None:
        return cross_entropy(_rows(logits), lab)
    xp = _xp(fn, p)
    onehot = np.zeros((lab.size, p.shape[-1]), p.dtype)
    onehot[np.arange(lab.size), lab] = 1
    t = _wrap(xp.from_host(onehot))
    return neg(mean(sum(mul(t, _clipped_log_probs(_rows(p))), axis=-1)))


def categorical_crossentropy(probs, onehot, from_logits=False):
    """Mean over the batch of -sum(onehot * log probs) over the classes:
    Keras's categorical_crossentropy. probs: (..., classes) probabilities,
    each row renormalised to sum 1 and clipped to [1e-7, 1 - 1e-7] as Keras
    does; onehot: targets of the same shape (one-hot or soft). With
    from_logits, probs are logits and log_softmax is used (exact for any
    logits); so is the input of an F.softmax output (over the last axis), as
    Keras's TensorFlow backend does."""
    fn = "categorical_crossentropy"
    p = _class_probs(probs, fn, "probs")
    t = _float_target(onehot, p, fn, "onehot")
    _same_shape(p, t, fn, "probs", "onehot")
    logits = p if from_logits else made_from(p, "softmax")
    logp = log_softmax(logits, axis=-1) if logits is not None else _clipped_log_probs(p)
    return neg(mean(sum(mul(t, logp), axis=-1)))

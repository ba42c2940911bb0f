"""What ``fit``, ``evaluate`` and ``predict`` feed the model: batches of
arrays or from a generator, the targets as the loss takes them, the class
weights, and the running totals of an epoch."""
import numbers

import numpy as np

from ..tensor import Tensor, tensor
from .metric_names import _true_classes


class _ArrayBatches:
    """Batches of (x, y) arrays in a seeded order per epoch."""

    def __init__(self, x, y, batch_size, shuffle, seed):
        self.x, self.y, self.batch_size, self.shuffle, self.seed = x, y, batch_size, shuffle, seed

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def epoch(self, epoch):
        n = len(self.x)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = None
        for start in range(0, n, self.batch_size):
            if order is None:
                sl = slice(start, start + self.batch_size)
                yield self.x[sl], (None if self.y is None else self.y[sl])
            else:
                idx = order[start:start + self.batch_size]
                yield self.x[idx], (None if self.y is None else self.y[idx])


class _IterableBatches:
    """Batches from a generator such as ``ImageDataGenerator.flow``: any
    iterable of (x, y) pairs; one pass per epoch (``len`` batches when it has
    a length, as Keras takes one epoch of a Sequence)."""

    def __init__(self, source):
        self.source = source
        try:
            self.n = len(source)
        except TypeError:
            self.n = None
        self._it = None

    def __len__(self):
        return self.n

    def epoch(self, epoch):
        if self.n is None:
            yield from self.source
            return
        if self._it is None:
            self._it = iter(self.source)
        for _ in range(self.n):
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = iter(self.source)
                batch = next(self._it)
            yield batch


def _is_array_like(x):
    """Arrays (or nested lists of numbers), not an iterable of (x, y) batches."""
    if isinstance(x, (np.ndarray, Tensor)):
        return True
    return isinstance(x, list) and not (x and isinstance(x[0], tuple))


def _as_array(x, name):
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"argument {name!r} must be a NumPy array, got {type(x).__name__}")
    # NumPy would turn None in an object array into NaN without a word
    bad = [v for v in x.flat if not isinstance(v, numbers.Real)] if x.dtype == object else []
    if bad:
        raise TypeError(f"argument {name!r} must hold numbers, got {type(bad[0]).__name__} in "
                        "an object array")
    return x


def _split_pair(data, name):
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and \
            not isinstance(data[0], (tuple, list)):
        return data[0], data[1]
    raise TypeError(f"argument {name!r} must be a tuple (x, y), got {type(data).__name__}")


def _targets(yb, kind, device):
    y = np.asarray(yb)
    if kind == "sparse":
        y = y.reshape(len(y)).astype(np.int64, copy=False)
    else:
        y = y.astype(np.float32, copy=False)
    t = tensor(y)
    return t if device == "cpu" else t.to(device)


def _class_weights(class_weight):
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"fit: argument 'class_weight' must be a dict {{class: weight}}, got "
                        f"{type(class_weight).__name__}")
    return {int(k): float(v) for k, v in class_weight.items()}


def _weighted_loss(loss_fn, out, yb, yt, weights, kind):
    """mean_i(w_i * loss_i) with w_i the weight of sample i's class: the sum
    over classes of (w_c * n_c / n) * (the loss's mean over class c)."""
    classes = _true_classes(yb, kind)
    n = len(classes)
    total = None
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        w = weights.get(int(c), 1.0) * len(idx) / n
        term = loss_fn(yt[idx], out[idx]) * w
        total = term if total is None else total + term
    return total


class _Totals:
    """Running loss and metrics of an epoch, weighted by batch size."""

    def __init__(self, model):
        self.metrics = model._metrics
        self.n = 0
        self.loss = 0.0
        self.outputs, self.targets = [], []
        self.streamed = all(name == "accuracy" for name, _ in self.metrics)
        self.sums = {name: 0.0 for name, _ in self.metrics}

    def add(self, out, yb, loss):
        o = out.numpy() if out.device == "cpu" else out.to("cpu").numpy()
        y = np.asarray(yb)
        k = len(o)
        self.loss += float(loss.item()) * k
        self.n += k
        if self.streamed:
            for name, fn in self.metrics:
                self.sums[name] += fn(o, y) * k
        else:
            self.outputs.append(o.copy())
            self.targets.append(y)

    def logs(self, running=False):
        logs = {"loss": self.loss / max(self.n, 1)}
        if self.streamed:
            logs.update({name: s / max(self.n, 1) for name, s in self.sums.items()})
        elif not running and self.outputs:
            o, y = np.concatenate(self.outputs), np.concatenate(self.targets)
            logs.update({name: fn(o, y) for name, fn in self.metrics})
        return logs



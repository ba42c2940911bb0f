"""Keras-style models: ``Sequential`` with compile / fit / evaluate / predict /
summary, and saving to one file that holds no pickles (``save`` /
``load_model``).

    model = Sequential([nn.Conv2D(32, 3, activation="relu"), nn.MaxPooling2D(),
                        nn.Flatten(), nn.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=10, validation_split=0.1)

A model file is a NumPy ``.npz`` archive written with ``allow_pickle=False``:
one JSON document (the layer configs, the compile arguments, the optimizer's
hyperparameters and scalar state) and the arrays (weights, moving statistics,
optimizer moments). It is written to a temporary file in the same folder and
renamed, so a crash never leaves a torn file; loading reads arrays and JSON
only and rebuilds layers from fastnn's own classes, so a hostile file can
fail to load but cannot run code.
"""
import json
import numbers
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

from . import callbacks as _callbacks
from . import functional as F
from . import nn
from . import optim as _optim
from .autograd import no_grad
from .tensor import Tensor, tensor

__all__ = ["Sequential", "load_model"]

_FORMAT = "fastnn.model"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------- losses and metrics by name
def _sparse_ce(out, y):
    return F.sparse_categorical_crossentropy(out, y)


def _categorical_ce(out, y):
    return F.categorical_crossentropy(out, y)


_LOSSES = {
    "sparse_categorical_crossentropy": _sparse_ce,
    "categorical_crossentropy": _categorical_ce,
    "binary_crossentropy": F.binary_cross_entropy,
    "mse": F.mse_loss,
    "mean_squared_error": F.mse_loss,
    "cross_entropy": F.cross_entropy,
}

# the label format each loss takes, which decides what "accuracy" means
_LABELS = {
    "sparse_categorical_crossentropy": "sparse", "cross_entropy": "sparse",
    "categorical_crossentropy": "onehot", "binary_crossentropy": "binary",
    "mse": "values", "mean_squared_error": "values",
}


def _loss_function(loss):
    if isinstance(loss, str):
        fn = _LOSSES.get(loss.lower())
        if fn is None:
            raise ValueError(f"compile: unknown loss {loss!r}; valid names are {sorted(_LOSSES)} "
                             f"or a callable loss(outputs, targets)")
        return loss.lower(), fn
    if callable(loss):
        return None, loss
    raise TypeError(f"compile: argument 'loss' must be a name or a callable, got "
                    f"{type(loss).__name__}")


def _metric(name, label_kind):
    """(name in logs, fn(outputs ndarray, targets ndarray) -> value) for a
    metric name; accuracy follows the loss's label format as in Keras."""
    from . import metrics as M
    key = name.lower()
    if key in ("accuracy", "acc"):
        return "accuracy", _ACCURACY[label_kind]

    def classes(out, y):
        pred = _predicted_classes(out, label_kind)
        return _true_classes(y, label_kind), pred

    averages = {"precision": M.precision_score, "recall": M.recall_score, "f1": M.f1_score,
                "f1_score": M.f1_score}
    if key in averages:
        fn = averages[key]
        average = "binary" if label_kind == "binary" else "macro"
        return ("f1" if key == "f1_score" else key), \
            lambda out, y: float(fn(*classes(out, y), average=average, zero_division=0))
    if key in ("auc", "roc_auc"):
        def auc(out, y):
            t = _true_classes(y, label_kind)
            scores = out.reshape(len(out), -1)
            if label_kind == "binary" or scores.shape[1] == 1:
                return float(M.roc_auc_score(t, scores[:, 0]))
            return float(M.roc_auc_score(t, scores, multi_class="ovr", average="macro",
                                         labels=np.arange(scores.shape[1])))
        return "auc", auc
    raise ValueError(f"compile: unknown metric {name!r}; valid names are 'accuracy', "
                     f"'precision', 'recall', 'f1', 'auc'")


def _predicted_classes(out, kind):
    out = out.reshape(len(out), -1)
    if kind == "binary" or out.shape[1] == 1:
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1)


def _true_classes(y, kind):
    y = np.asarray(y)
    if kind == "onehot":
        return y.reshape(len(y), -1).argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


_ACCURACY = {
    "sparse": lambda out, y: float(np.mean(_predicted_classes(out, "sparse")
                                           == _true_classes(y, "sparse"))),
    "onehot": lambda out, y: float(np.mean(_predicted_classes(out, "onehot")
                                           == _true_classes(y, "onehot"))),
    "binary": lambda out, y: float(np.mean(_predicted_classes(out, "binary")
                                           == _true_classes(y, "binary"))),
    "values": lambda out, y: float(np.mean(np.round(out.reshape(y.shape)) == y)),
    None: lambda out, y: float(np.mean(out.reshape(len(out), -1).argmax(axis=1)
                                       == np.asarray(y).reshape(len(y)))),
}


# ---------------------------------------------------------------- batches
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


# ---------------------------------------------------------------- the model
class Sequential(nn.Sequential):
    """A stack of layers (``fastnn.nn.Sequential``) with Keras's training
    methods. Built on the first call or the first ``fit``/``predict``."""

    def __init__(self, layers=None, name=None):
        super().__init__(layers)
        self.name = name or "sequential"
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self._loss_name = None
        self._loss_fn = None
        self._metric_names = []
        self._label_kind = None
        self._built_input_shape = None
        self._output_shapes = None
        self._shuffle_seed = None

    # ------------------------------------------------------------ forward
    def forward(self, x):
        if self._built_input_shape is None:
            self._built_input_shape = tuple(x.shape[1:])
            shapes = []
            for layer in self:
                x = layer(x)
                shapes.append(tuple(x.shape[1:]))
            self._output_shapes = shapes
            return x
        return super().forward(x)

    @property
    def built(self):
        return self._built_input_shape is not None

    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch axis
        included, it may be None)."""
        shape = tuple(1 if s is None else int(s) for s in input_shape)
        with no_grad():
            self(np.zeros(shape, np.float32), training=False)

    def _device(self):
        params = self.parameters()
        return params[0].device if params else "cpu"

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=None):
        """Chooses the optimizer (a name such as "adam", "sgd", "rmsprop",
        "adagrad", "adamw" with PyTorch's defaults, or an optimizer made by
        ``fastnn.optim``), the loss (a Keras name or a callable
        ``loss(outputs, targets) -> scalar tensor``) and the metrics to report
        ("accuracy", "precision", "recall", "f1", "auc")."""
        self._loss_name, self._loss_fn = _loss_function(loss)
        self.loss = loss
        self._label_kind = _LABELS.get(self._loss_name)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        self._metrics = [_metric(m, self._label_kind) for m in metrics]
        self._metric_names = list(metrics)
        if isinstance(optimizer, str):
            _optim_class(optimizer)  # unknown names fail now, not at fit
        elif not isinstance(optimizer, _optim.Optimizer):
            raise TypeError(f"compile: argument 'optimizer' must be a name or a fastnn.optim "
                            f"optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        return self

    def _require_compiled(self, fn):
        if self._loss_fn is None:
            raise RuntimeError(f"{fn}: call model.compile(optimizer, loss, metrics) first")

    def _make_optimizer(self):
        # weights exist only after the first call, so a named optimizer is
        # created once the model is built
        if isinstance(self.optimizer, str):
            self.optimizer = _optim_class(self.optimizer)(self.parameters())

    # ------------------------------------------------------------ checks
    def _check_targets(self, out_shape, y, fn):
        """ValueError for labels that the loss cannot take (before training)."""
        if y is None:
            raise ValueError(f"{fn}: argument 'y' is required with array inputs")
        kind = self._label_kind
        n_out = int(np.prod(out_shape)) if out_shape else 1
        if kind == "sparse":
            if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
                raise ValueError(f"{fn}: argument 'y' must hold integer class labels for "
                                 f"{self._loss_name}, got dtype {y.dtype}")
            if y.size and (y.min() < 0 or y.max() >= n_out):
                raise ValueError(f"{fn}: labels in 'y' must be in [0, {n_out}) for a model with "
                                 f"{n_out} outputs, got values in [{y.min()}, {y.max()}]")
            if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
                raise ValueError(f"{fn}: argument 'y' must have shape (n,) or (n, 1) for "
                                 f"{self._loss_name}, got {y.shape}")
        elif kind in ("onehot", "values", "binary"):
            if y.ndim < 1 or int(np.prod(y.shape[1:])) != n_out:
                raise ValueError(f"{fn}: argument 'y' must have shape (n, {n_out}) to match the "
                                 f"model's outputs {tuple(out_shape)}, got {y.shape}")

    def _probe(self, x, fn):
        """Runs one sample through the model in inference mode: builds it and
        raises the layers' ValueError for a wrong input shape."""
        with no_grad():
            out = self(np.asarray(x[:1], dtype=np.float32), training=False)
        return tuple(out.shape[1:])

    # ------------------------------------------------------------ fit
    def fit(self, x, y=None, batch_size=32, epochs=1, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            initial_epoch=0, steps_per_epoch=None):
        """Trains for ``epochs - initial_epoch`` epochs and returns the
        ``History`` (``history.history``: per-epoch lists of ``loss``, the
        metrics, and ``val_*`` with validation data).

        ``x`` is an array with ``y`` the targets, or an iterable of ``(x, y)``
        batches such as ``ImageDataGenerator.flow(...)`` (``len`` batches make
        an epoch). ``validation_split`` holds out the last fraction of the
        arrays, before shuffling, as Keras does; ``class_weight`` maps a class
        to the weight of its samples in the loss."""
        self._require_compiled("fit")
        batch_size = _positive(batch_size, "batch_size", "fit")
        epochs = _non_negative(epochs, "epochs", "fit")
        initial_epoch = _non_negative(initial_epoch, "initial_epoch", "fit")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"fit: argument 'validation_split' must be in [0, 1), got "
                             f"{validation_split}")
        if self._shuffle_seed is None:
            from . import _random
            self._shuffle_seed = int(_random.generator().integers(2**63 - 1))

        # the data, checked before any step
        if _is_array_like(x):
            x = _as_array(x, "x")
            y = None if y is None else _as_array(y, "y")
            if y is not None and len(x) != len(y):
                raise ValueError(f"fit: arguments 'x' and 'y' must have the same number of "
                                 f"samples, got {len(x)} and {len(y)}")
            if validation_split and validation_data is None:
                n_val = int(len(x) * float(validation_split))
                if n_val == 0 or n_val == len(x):
                    raise ValueError(f"fit: validation_split={validation_split} of {len(x)} "
                                     f"samples leaves an empty training or validation set")
                validation_data = (x[-n_val:], y[-n_val:])
                x, y = x[:-n_val], y[:-n_val]
            if len(x) == 0:
                raise ValueError("fit: argument 'x' holds no samples")
            self._check_targets(self._probe(x, "fit"), y, "fit")
            batches = _ArrayBatches(x, y, batch_size, bool(shuffle), self._shuffle_seed)
        else:
            if y is not None:
                raise ValueError("fit: argument 'y' must be None when 'x' is a generator of "
                                 "(x, y) batches")
            if validation_split:
                raise ValueError("fit: validation_split needs array inputs; pass "
                                 "validation_data with a generator")
            batches = _IterableBatches(x)
        if validation_data is not None:
            vx, vy = _split_pair(validation_data, "validation_data")
            vx, vy = _as_array(vx, "validation_data[0]"), _as_array(vy, "validation_data[1]")
            if len(vx) != len(vy):
                raise ValueError(f"fit: validation_data x and y must have the same number of "
                                 f"samples, got {len(vx)} and {len(vy)}")
            self._check_targets(self._probe(vx, "fit"), vy, "fit")
        weights = _class_weights(class_weight)
        steps = len(batches) if steps_per_epoch is None else _positive(
            steps_per_epoch, "steps_per_epoch", "fit")

        history = _callbacks.History()
        # History last, as in Keras: it records what the other callbacks add to the logs
        cbs = _callbacks.CallbackList(list(callbacks or []) + [history], model=self,
                                      params={"epochs": epochs, "steps": steps,
                                              "verbose": verbose})
        progress = _Progress(verbose, epochs, steps, batch_size)
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            self.train()
            progress.begin(epoch)
            totals = _Totals(self)
            for step, (xb, yb) in enumerate(batches.epoch(epoch)):
                if steps is not None and step >= steps:
                    break
                cbs.on_train_batch_begin(step)
                out, loss = self._train_step(xb, yb, weights)
                totals.add(out, yb, loss)
                logs = totals.logs(running=True)
                progress.update(step + 1, logs, len(xb))
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            logs = totals.logs()
            if validation_data is not None:
                val = self.evaluate(vx, vy, batch_size=batch_size)
                logs.update({f"val_{k}": v for k, v in val.items()})
            progress.end(logs)
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        progress.close()
        return history

    def _train_step(self, xb, yb, weights):
        device = self._device()
        x = tensor(np.asarray(xb, dtype=np.float32))
        if device != "cpu":
            x = x.to(device)
        out = self(x)
        if self.optimizer is None or isinstance(self.optimizer, str):
            self._make_optimizer()
        yt = _targets(yb, self._label_kind, device)
        if weights is None:
            loss = self._loss_fn(out, yt)
        else:
            loss = _weighted_loss(self._loss_fn, out, yb, yt, weights, self._label_kind)
        for penalty in self.regularization_losses():
            loss = loss + penalty
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return out, loss

    # ------------------------------------------------------------ evaluate / predict
    def evaluate(self, x, y=None, batch_size=32, verbose=0, return_dict=True):
        """The loss (with the regularisation penalties, as Keras reports it)
        and the compiled metrics over (x, y), in inference mode, as a dict."""
        self._require_compiled("evaluate")
        batch_size = _positive(batch_size, "batch_size", "evaluate")
        if _is_array_like(x):
            x = _as_array(x, "x")
            y = None if y is None else _as_array(y, "y")
            if y is None or len(x) != len(y):
                raise ValueError(f"evaluate: arguments 'x' and 'y' must have the same number of "
                                 f"samples, got {len(x)} and {None if y is None else len(y)}")
            self._check_targets(self._probe(x, "evaluate"), y, "evaluate")
            source = _ArrayBatches(x, y, batch_size, False, 0).epoch(0)
        else:
            source = iter(x)
        totals = _Totals(self)
        device = self._device()
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                penalty = sum(float(p.item()) for p in self.regularization_losses())
                for xb, yb in source:
                    xt = tensor(np.asarray(xb, dtype=np.float32))
                    if device != "cpu":
                        xt = xt.to(device)
                    out = self(xt)
                    loss = self._loss_fn(out, _targets(yb, self._label_kind, device))
                    totals.add(out, yb, loss)
        finally:
            self.train(was_training)
        logs = totals.logs()
        logs["loss"] += penalty
        return logs if return_dict else list(logs.values())

    def predict(self, x, batch_size=32, verbose=0):
        """The model's outputs for ``x``, batch by batch in inference mode, as
        one NumPy array."""
        batch_size = _positive(batch_size, "batch_size", "predict")
        x = _as_array(x, "x")
        if len(x) == 0:
            raise ValueError("predict: argument 'x' holds no samples")
        device = self._device()
        was_training = self.training
        self.eval()
        outs = []
        try:
            with no_grad():
                for start in range(0, len(x), batch_size):
                    xt = tensor(np.asarray(x[start:start + batch_size], dtype=np.float32))
                    if device != "cpu":
                        xt = xt.to(device)
                    out = self(xt)
                    outs.append(out.to("cpu").numpy() if device != "cpu" else out.numpy())
        finally:
            self.train(was_training)
        return np.concatenate(outs)

    # ------------------------------------------------------------ summary
    def summary(self, print_fn=None):
        """Prints the layer table (type, output shape, parameter count) and the
        totals, as Keras does; the model must have been built."""
        if not self.built:
            raise ValueError("summary: the model has not been built yet; call it on data, "
                             "fit it, or call model.build(input_shape) first")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        total = trainable = 0
        for (name, layer), shape in zip(self._modules.items(), self._output_shapes):
            n = sum(int(np.prod(t.shape)) for _, t in layer.named_parameters())
            nb = sum(int(np.prod(t.shape)) for _, t in layer.named_buffers())
            total += n + nb
            trainable += n
            kind = type(layer).__name__
            rows.append((f"{kind.lower()}_{name} ({kind})", str((None,) + shape), f"{n + nb:,}"))
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        rule = "=" * sum(widths)
        lines = [f'Model: "{self.name}"', rule,
                 "".join(c.ljust(w) for c, w in zip(rows[0], widths)), rule]
        lines += ["".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows[1:]]
        lines += [rule, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        (print_fn or print)("\n".join(lines))

    # ------------------------------------------------------------ saving
    def get_config(self):
        return {"name": self.name, "layers": [layer.get_config() for layer in self]}

    def save(self, path):
        """Writes the architecture, the weights and (when compiled) the loss,
        metrics and optimizer state to ``path`` (a ``.npz`` archive without
        pickles), atomically."""
        document = {"format": _FORMAT, "version": _FORMAT_VERSION, "model": self.get_config(),
                    "input_shape": list(self._built_input_shape) if self.built else None}
        arrays = _weights_arrays(self)
        if self._loss_fn is not None:
            if self._loss_name is None:
                raise ValueError("save: the loss is a Python callable, which a model file "
                                 "cannot hold; compile with a loss name, or use save_weights")
            document["compile"] = {"loss": self._loss_name, "metrics": self._metric_names}
            opt = self.optimizer
            if isinstance(opt, str):
                document["compile"]["optimizer"] = {"name": opt}
            elif opt is not None:
                state, opt_arrays = _flatten(opt.state_dict(), "optimizer")
                arrays.update(opt_arrays)
                document["compile"]["optimizer"] = {
                    "class_name": type(opt).__name__, "defaults": _json_value(opt.defaults),
                    "state": state}
        document["shuffle_seed"] = self._shuffle_seed
        _write_npz(path, document, arrays)

    def save_weights(self, path):
        """Writes the weights and moving statistics alone (``.npz``, atomic)."""
        _write_npz(path, {"format": _FORMAT + ".weights", "version": _FORMAT_VERSION},
                   _weights_arrays(self))

    def load_weights(self, path):
        """Reads weights written by ``save_weights`` or ``save`` into this
        (built) model; names and shapes must match."""
        document, arrays = _read_npz(path)
        if not self.built:
            shape = document.get("input_shape")
            if shape is None:
                raise ValueError("load_weights: build the model first (call it on data or "
                                 "model.build(input_shape))")
            self.build((1,) + tuple(shape))
        _load_weights(self, arrays, path)


# ---------------------------------------------------------------- training helpers
def _positive(v, name, fn):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{fn}: argument {name!r} must be a positive int, got {v!r}")
    return int(v)


def _non_negative(v, name, fn):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
        raise ValueError(f"{fn}: argument {name!r} must be a non-negative int, got {v!r}")
    return int(v)


def _optim_class(name):
    classes = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
               "adagrad": "Adagrad"}
    key = name.lower()
    if key not in classes:
        raise ValueError(f"compile: unknown optimizer {name!r}; valid names are "
                         f"{sorted(classes)}")
    return getattr(_optim, classes[key])


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
        term = loss_fn(out[idx], yt[idx]) * w
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


class _Progress:
    """verbose=1: a tqdm bar per epoch on a terminal (one line per epoch when
    the output is not a terminal); verbose=2: one line per epoch; 0: silent."""

    def __init__(self, verbose, epochs, steps, batch_size):
        self.verbose, self.epochs, self.steps = int(verbose), epochs, steps
        self.bar = None
        self.live = self.verbose == 1 and sys.stdout.isatty()
        self.images = 0

    def begin(self, epoch):
        self.start = time.perf_counter()
        self.images = 0
        self.epoch = epoch
        if self.live:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                            unit="step", leave=True, dynamic_ncols=True, file=sys.stdout)

    def update(self, step, logs, n):
        self.images += n
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0 or step == self.steps:
                rate = self.images / max(time.perf_counter() - self.start, 1e-9)
                self.bar.set_postfix_str(_format_logs(logs) + f" - {rate:,.0f} img/s",
                                         refresh=False)

    def end(self, logs):
        elapsed = time.perf_counter() - self.start
        rate = self.images / max(elapsed, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(_format_logs(logs) + f" - {rate:,.0f} img/s")
            self.bar.close()
            self.bar = None
        elif self.verbose:
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {elapsed:.1f}s - {rate:,.0f} img/s - "
                  f"{_format_logs(logs)}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


# ---------------------------------------------------------------- files
def _weights_arrays(model):
    return {f"weights/{name}": np.ascontiguousarray(a) for name, a in model.state_dict().items()}


def _load_weights(model, arrays, path):
    state = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: the weights do not match the model (missing {missing}, "
                         f"unexpected {extra})")
    for k, v in state.items():
        want = tuple(expected[k].shape)
        if tuple(v.shape) != want:
            raise ValueError(f"{path}: weight {k!r} has shape {tuple(v.shape)}, the model "
                             f"expects {want}")
    model.load_state_dict(state)


def _json_value(v):
    if isinstance(v, dict):
        return {str(k): _json_value(e) for k, e in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(e) for e in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if v is None or isinstance(v, str):
        return v
    raise TypeError(f"save: cannot store a {type(v).__name__} in a model file")


def _flatten(value, prefix):
    """(JSON document, {key: array}): arrays and tensors in ``value`` become
    {"__array__": key} references into the archive."""
    arrays = {}

    def walk(v, path):
        if isinstance(v, Tensor):
            v = v.to("cpu").numpy() if v.device != "cpu" else v.numpy()
        if isinstance(v, np.ndarray):
            key = f"{prefix}/{len(arrays)}"
            arrays[key] = np.ascontiguousarray(v)
            return {"__array__": key}
        if isinstance(v, dict):
            return {"__dict__": [[walk(k, path), walk(e, path)] for k, e in v.items()]}
        if isinstance(v, (list, tuple)):
            return {"__list__" if isinstance(v, list) else "__tuple__":
                    [walk(e, path) for e in v]}
        return _json_value(v)

    return walk(value, prefix), arrays


def _unflatten(doc, arrays, path):
    def walk(v):
        if isinstance(v, dict):
            if set(v) == {"__array__"}:
                key = v["__array__"]
                if key not in arrays:
                    raise ValueError(f"{path}: damaged model file (array {key!r} is missing)")
                return arrays[key].copy()
            if set(v) == {"__dict__"}:
                return {_hashable(walk(k)): walk(e) for k, e in v["__dict__"]}
            if set(v) == {"__list__"}:
                return [walk(e) for e in v["__list__"]]
            if set(v) == {"__tuple__"}:
                return tuple(walk(e) for e in v["__tuple__"])
            raise ValueError(f"{path}: damaged model file (unexpected entry {sorted(v)})")
        return v

    return walk(doc)


def _hashable(k):
    if isinstance(k, list):
        return tuple(k)
    return k


def _write_npz(path, document, arrays):
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz" if not os.path.splitext(path)[1] else ""
    folder = os.path.dirname(os.path.abspath(path))
    text = json.dumps(document).encode("utf-8")
    payload = dict(arrays)
    payload["__fastnn__"] = np.frombuffer(text, dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a saved model is not
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


_MAX_DOCUMENT = 64 << 20


def _read_npz(path):
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path += ".npz"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise ValueError(f"{path}: not a fastnn model file, or a damaged one ({e})") from None
    text = arrays.pop("__fastnn__", None)
    if text is None or text.dtype != np.uint8 or text.ndim != 1 or text.size > _MAX_DOCUMENT:
        raise ValueError(f"{path}: not a fastnn model file (no valid '__fastnn__' entry)")
    try:
        document = json.loads(text.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: damaged model file ({e})") from None
    if not isinstance(document, dict) or not str(document.get("format", "")).startswith(_FORMAT):
        raise ValueError(f"{path}: not a fastnn model file")
    if document.get("version") != _FORMAT_VERSION:
        raise ValueError(f"{path}: model file version {document.get('version')!r}; this fastnn "
                         f"reads version {_FORMAT_VERSION}")
    return document, arrays


def _layer_classes():
    return {name: cls for name, cls in vars(nn).items()
            if isinstance(cls, type) and issubclass(cls, nn.Layer) and cls is not nn.Layer}


def _layer_from_config(entry, path):
    classes = _layer_classes()
    if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
        raise ValueError(f"{path}: damaged model file (a layer entry is not a config)")
    name = entry.get("class_name")
    if name not in classes:
        raise ValueError(f"{path}: unknown layer class {name!r}; fastnn knows "
                         f"{sorted(classes)}")
    config = {}
    for k, v in entry.get("config", {}).items():
        if isinstance(v, dict) and "class_name" in v:
            v = _object_from_config(v, path)
        config[k] = tuple(v) if isinstance(v, list) else v
    try:
        return classes[name](**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot rebuild layer {name} from {config}: {e}") from None


def _object_from_config(entry, path):
    """A nested layer or a regularizer from its config."""
    name = entry.get("class_name")
    if name in _layer_classes():
        return _layer_from_config(entry, path)
    from . import regularizers
    cls = getattr(regularizers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, regularizers.Regularizer)):
        raise ValueError(f"{path}: unknown object class {name!r} in a layer config")
    try:
        return cls(**entry.get("config", {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot rebuild {name}: {e}") from None


def load_model(path):
    """Rebuilds a model saved by ``model.save(path)``: layers, weights, and,
    when it was compiled, the loss, metrics and optimizer with its state, so
    training can resume where it stopped. Raises ValueError for a file that
    is not a fastnn model or is damaged; it never runs code from the file."""
    document, arrays = _read_npz(path)
    spec = document.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ValueError(f"{path}: damaged model file (no layer list)")
    layers = [_layer_from_config(entry, path) for entry in spec["layers"]]
    model = Sequential(layers, name=spec.get("name"))
    shape = document.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"{path}: damaged model file (input_shape {shape!r})")
        model.build((1,) + tuple(shape))
        _load_weights(model, arrays, path)
    model._shuffle_seed = document.get("shuffle_seed")
    compiled = document.get("compile")
    if isinstance(compiled, dict):
        opt_doc = compiled.get("optimizer") or {"name": "adam"}
        optimizer = opt_doc.get("name", "adam")
        if "class_name" in opt_doc:
            cls = getattr(_optim, str(opt_doc["class_name"]), None)
            if not (isinstance(cls, type) and issubclass(cls, _optim.Optimizer)):
                raise ValueError(f"{path}: unknown optimizer {opt_doc['class_name']!r}")
            defaults = opt_doc.get("defaults", {})
            if not isinstance(defaults, dict):
                raise ValueError(f"{path}: damaged model file (optimizer defaults)")
            defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in defaults.items()}
            try:
                optimizer = cls(model.parameters(), **defaults)
                optimizer.load_state_dict(_unflatten(opt_doc.get("state"), arrays, path))
            except (TypeError, KeyError) as e:
                raise ValueError(f"{path}: cannot rebuild the optimizer: {e}") from None
        model.compile(optimizer=optimizer, loss=compiled.get("loss"),
                      metrics=compiled.get("metrics") or [])
    return model

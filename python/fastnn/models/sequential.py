"""``Sequential``: a stack of layers with Keras's compile / fit / evaluate /
predict / summary and saving. ``fit``'s loop is ``Sequential.fit``; one
training step (forward, loss, backward, update) is ``Sequential._train_step``."""
import numpy as np

from .. import _checks, _random
from .. import callbacks as _callbacks
from .. import distributed as _distributed
from .. import losses as _losses
from .. import nn
from .. import optim as _optim
from ..autograd import no_grad
from ..tensor import tensor
from . import file_format as _file
from .batches import (_ArrayBatches, _IterableBatches, _as_array, _class_weights, _is_array_like,
                      _split_pair, _targets, _Totals, _weighted_loss)
from .metric_names import _metric


def _loss_function(loss):
    """(name to save or None, loss(y_true, y_pred), label kind) from losses.get."""
    fn = _losses.get(loss)
    return (loss.lower() if isinstance(loss, str) else None), fn, _losses.label_kind(fn)


def _positive(v, name, fn):
    return _checks.integer(v, name, fn, low=1)


def _non_negative(v, name, fn):
    return _checks.integer(v, name, fn, low=0)


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
        ``fastnn.optim``), the loss (anything ``fastnn.losses.get`` takes: a
        Keras name, a loss object such as ``losses.BinaryCrossentropy()``, or
        a callable ``loss(y_true, y_pred) -> scalar tensor``, Keras's argument
        order, which every form is called in) and the metrics to report
        ("accuracy", "precision", "recall", "f1", "auc")."""
        self._loss_name, self._loss_fn, self._label_kind = _loss_function(loss)
        self.loss = loss
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        self._metrics = [_metric(m, self._label_kind) for m in metrics]
        self._metric_names = list(metrics)
        if not isinstance(optimizer, _optim.Optimizer):
            _optim.get(optimizer)  # an unknown name fails now, not at fit
        self.optimizer = optimizer
        return self

    def _require_compiled(self, fn):
        if self._loss_fn is None:
            raise RuntimeError(f"{fn}: call model.compile(optimizer, loss, metrics) first")

    def _make_optimizer(self):
        # weights exist only after the first call, so an optimizer given by
        # name (or class, or factory) is made once the model is built
        if not isinstance(self.optimizer, _optim.Optimizer):
            self.optimizer = _optim.get(self.optimizer, self.parameters())

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
        world = _distributed.fit_world(self, batches, steps)  # LOCAL unless under mpiexec

        cbs, history = _callbacks.configure(world.callbacks(list(callbacks or [])), self, epochs,
                                            steps, world.verbose(verbose))
        self.stop_training = False
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            self.train()
            totals = _Totals(self)
            for step, (xb, yb) in enumerate(batches.epoch(epoch)):
                if steps is not None and step >= steps:
                    break
                cbs.on_train_batch_begin(step, {"size": len(xb)})
                world.train_step(self, totals, xb, yb, weights)
                cbs.on_train_batch_end(step, totals.logs(running=True))
                if self.stop_training:
                    break
            logs = totals.logs()
            if validation_data is not None:
                val = world.evaluate(self, vx, vy, batch_size)
                logs.update({f"val_{k}": v for k, v in val.items()})
            cbs.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbs.on_train_end()
        return history

    def _train_step(self, xb, yb, weights, average_gradients=None):
        device = self._device()
        x = tensor(np.asarray(xb, dtype=np.float32))
        if device != "cpu":
            x = x.to(device)
        out = self(x)
        self._make_optimizer()
        yt = _targets(yb, self._label_kind, device)
        if weights is None:
            loss = self._loss_fn(yt, out)
        else:
            loss = _weighted_loss(self._loss_fn, out, yb, yt, weights, self._label_kind)
        for penalty in self.regularization_losses():
            loss = loss + penalty
        self.optimizer.zero_grad()
        loss.backward()
        if average_gradients is not None:  # over MPI ranks (fastnn.distributed)
            average_gradients(self.optimizer, len(xb))
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
                    loss = self._loss_fn(_targets(yb, self._label_kind, device), out)
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
        document = {"format": _file.FORMAT, "version": _file.FORMAT_VERSION, "model": self.get_config(),
                    "input_shape": list(self._built_input_shape) if self.built else None}
        arrays = _file._weights_arrays(self)
        if self._loss_fn is not None:
            if self._loss_name is None:
                raise ValueError("save: the loss is a Python callable, which a model file "
                                 "cannot hold; compile with a loss name, or use save_weights")
            document["compile"] = {"loss": self._loss_name, "metrics": self._metric_names}
            opt = self.optimizer
            if isinstance(opt, str):
                document["compile"]["optimizer"] = {"name": opt}
            elif not isinstance(opt, _optim.Optimizer):
                raise ValueError("save: the optimizer is a Python class or factory, which a "
                                 "model file cannot hold; compile with a name or an optimizer")
            else:
                state, opt_arrays = _file._flatten(opt.state_dict(), "optimizer")
                arrays.update(opt_arrays)
                document["compile"]["optimizer"] = {
                    "class_name": type(opt).__name__, "defaults": _file._json_value(opt.defaults),
                    "state": state}
        document["shuffle_seed"] = self._shuffle_seed
        _file._write_npz(path, document, arrays)

    def save_weights(self, path):
        """Writes the weights and moving statistics alone (``.npz``, atomic)."""
        _file._write_npz(path, {"format": _file.FORMAT + ".weights",
                                "version": _file.FORMAT_VERSION}, _file._weights_arrays(self))

    def load_weights(self, path):
        """Reads weights written by ``save_weights`` or ``save`` into this
        (built) model; names and shapes must match."""
        document, arrays = _file._read_npz(path)
        if not self.built:
            shape = document.get("input_shape")
            if shape is None:
                raise ValueError("load_weights: build the model first (call it on data or "
                                 "model.build(input_shape))")
            self.build((1,) + tuple(shape))
        _file._load_weights(self, arrays, path)

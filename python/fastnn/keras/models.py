"""Keras's models: ``Sequential`` and ``load_model``.

``Sequential`` is ``fastnn.models.Sequential`` with Keras 3's behaviour
where fastnn's differs: the model and its layers are named as Keras names
them; ``Input(shape)`` or a first layer's ``input_shape`` builds it at once;
``compile`` takes Keras's optimizer, loss and metric objects and names
(``optimizer="adam"`` is Keras's Adam, epsilon 1e-7); ``fit`` returns the
``History`` and keeps it as ``model.history``; ``evaluate`` returns the loss
alone, or ``[loss, *metrics]``, unless ``return_dict=True``;
``batch_size=None`` means 32; ``summary()`` prints Keras's table.
"""
import time

import numpy as np

from .. import models as _models
from ..autograd import no_grad
from . import _naming
from . import layers as _layers
from . import metrics as _metrics
from . import optimizers as _optimizers

__all__ = ["Sequential", "load_model"]

_UNSUPPORTED = "is not supported by fastnn.keras (docs/keras.md)"


class Sequential(_models.Sequential):
    """A stack of layers with Keras 3's training methods."""

    def __init__(self, layers=None, trainable=True, name=None):
        if trainable is not True:
            raise ValueError(f"Sequential: trainable={trainable!r} {_UNSUPPORTED}")
        inputs = []
        if isinstance(layers, (list, tuple)):
            inputs = [layer for layer in layers if isinstance(layer, _layers.InputLayer)]
            if inputs and (len(inputs) > 1 or layers[0] is not inputs[0]):
                raise ValueError("Sequential: an Input / InputLayer may only be the first layer")
            layers = [layer for layer in layers if not isinstance(layer, _layers.InputLayer)]
        super().__init__(layers, name=_naming.unique(name, "Sequential"))
        self.history = None
        self._input = inputs[0].shape if inputs else None
        self._built_shape = None  # the input shape the model was built for
        self._build_if_shape_known()

    def add(self, layer):
        if isinstance(layer, _layers.InputLayer):
            if len(self):
                raise ValueError("Sequential.add: an Input / InputLayer may only come first")
            self._input = layer.shape
            return self
        super().add(layer)
        if len(self) == 1 and "_built_shape" in self.__dict__:  # not while __init__ adds
            self._build_if_shape_known()
        return self

    def get_layer(self, name=None, index=None):
        """A layer by its name or its index."""
        if index is not None:
            return self[index]
        for layer in self:
            if getattr(layer, "name", None) == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are "
                         f"{[getattr(layer, 'name', None) for layer in self]}")

    # ------------------------------------------------------------ building
    def _known_input_shape(self):
        if self._input is not None:
            return self._input
        first = self.layers[0] if len(self) else None
        return getattr(first, "_keras_input_shape", None)

    def _build_if_shape_known(self, x=None):
        """Builds the model (and binds its optimizer) from x's shape or the
        declared input shape, when either is known."""
        if not self.built and len(self):
            shape = _sample_shape(x) if x is not None else None
            shape = shape or self._known_input_shape()
            if shape is not None and all(s is not None for s in shape):
                self.build((None,) + tuple(shape))
        if isinstance(self.optimizer, _optimizers.Optimizer):
            self.optimizer._attach(self)

    # ------------------------------------------------------------ compile / fit / evaluate
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Keras's compile: ``optimizer`` a name (Keras's defaults) or an
        optimizer object, ``loss`` a name, a ``losses`` object or function, or
        a callable ``loss(y_true, y_pred)``; ``metrics`` names or ``metrics``
        objects. The execution options are accepted and have no effect."""
        for arg, value in (("loss_weights", loss_weights),
                           ("weighted_metrics", weighted_metrics)):
            if value is not None:
                raise ValueError(f"compile: argument {arg!r} {_UNSUPPORTED}")
        if loss is None:
            raise ValueError("compile: argument 'loss' is required, e.g. "
                             "loss='sparse_categorical_crossentropy'")
        if isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        optimizer = _optimizers.get(optimizer)
        super().compile(optimizer=optimizer, loss=loss,
                        metrics=[_metrics.get(m) for m in metrics or []])
        self._build_if_shape_known()  # binds a Keras optimizer to the weights, when they exist
        return None

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Keras's fit: returns the History, also kept as ``model.history``."""
        _unsupported("fit", sample_weight=sample_weight, validation_steps=validation_steps,
                     validation_batch_size=validation_batch_size)
        if validation_freq != 1:
            raise ValueError(f"fit: validation_freq={validation_freq!r} {_UNSUPPORTED}")
        self._build_if_shape_known(x)
        self._fitting = True
        try:
            self.history = super().fit(
                x, y, batch_size=_batch_size(batch_size), epochs=epochs,
                verbose=_verbose(verbose), callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data,
                shuffle=shuffle, class_weight=class_weight, initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch)
        finally:
            self._fitting = False
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """The loss and the compiled metrics: a float when there are no
        metrics, else ``[loss, *metrics]`` in compile's order; a dict with
        ``return_dict=True``."""
        if self.__dict__.get("_fitting"):  # fastnn's fit validates through evaluate
            return super().evaluate(x, y, batch_size=batch_size, return_dict=True)
        _unsupported("evaluate", sample_weight=sample_weight, steps=steps, callbacks=callbacks)
        start = time.perf_counter()
        logs = super().evaluate(x, y, batch_size=_batch_size(batch_size), return_dict=True)
        if _verbose(verbose):
            print(f"evaluate - {time.perf_counter() - start:.1f}s - " +
                  " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), flush=True)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The outputs for x as one NumPy array (batches of 32 by default)."""
        _unsupported("predict", steps=steps, callbacks=callbacks)
        return super().predict(x, batch_size=_batch_size(batch_size))

    # ------------------------------------------------------------ summary
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Prints Keras 3's table: each layer's name and class, output shape
        and parameter count, then the totals with their size in memory."""
        self._build_if_shape_known()
        if not self.built:
            raise ValueError(f"summary: the model {self.name!r} has not been built yet: give "
                             f"the first layer input_shape=..., start with Input(shape), or "
                             f"call it on data first")
        rows = [("Layer (type)", "Output Shape", "Param #")]
        trainable = fixed = 0
        for layer, shape in zip(self, _output_shapes(self)):
            n_train = sum(int(np.prod(p.shape)) for p in layer.parameters())
            n_fixed = sum(int(np.prod(b.shape)) for b in layer.buffers())
            trainable, fixed = trainable + n_train, fixed + n_fixed
            name = getattr(layer, "name", None) or _naming.snake_case(type(layer).__name__)
            rows.append((f"{name} ({type(layer).__name__})", str((None,) + shape),
                         f"{n_train + n_fixed:,}"))
        (print_fn or print)("\n".join(_table(self.name, rows, trainable, fixed)))

    def forward(self, x):
        if self._built_shape is None:
            self._built_shape = tuple(x.shape[1:])
        return super().forward(x)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model saved by ``model.save``, as a Keras ``Sequential`` whose layers
    are this module's classes (named afresh). It never runs code from the
    file (``safe_mode`` is always on)."""
    if custom_objects:
        raise ValueError(f"load_model: custom_objects {_UNSUPPORTED}")
    model = _models.load_model(filepath)
    model.__class__ = Sequential
    model.name = _naming.unique(None, "Sequential") if model.name == "sequential" else model.name
    model.history = None
    model._input = None
    # fastnn's record of the shape it was built for
    model._built_shape = getattr(model, "_built_input_shape", None) if model.built else None
    for layer in model:
        _layers.adopt(layer)
    if not compile:
        model.optimizer = None
        model._loss_fn = None
    return model


# ---------------------------------------------------------------- helpers
def _unsupported(fn, **arguments):
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(f"{fn}: argument {name!r} {_UNSUPPORTED}")


def _batch_size(batch_size):
    return 32 if batch_size is None else batch_size


def _verbose(verbose):
    return 1 if verbose == "auto" else verbose


def _sample_shape(x):
    """The shape of one sample of x (an array, or a Keras-style sequence of
    (x, y) batches such as ImageDataGenerator.flow), or None."""
    if isinstance(x, np.ndarray):
        return x.shape[1:]
    if hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(x, (list, tuple)):
        try:
            batch = x[0]
        except (IndexError, KeyError, TypeError, ValueError):
            return None
        xb = batch[0] if isinstance(batch, tuple) else batch
        return np.shape(xb)[1:]
    return None


def _output_shapes(model):
    """Each layer's output shape (batch axis left out), from one zero sample."""
    shapes = []
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            h = np.zeros((1,) + tuple(model._built_shape), np.float32)
            for layer in model:
                h = layer(h)
                shapes.append(tuple(h.shape[1:]))
    finally:
        model.train(was_training)
    return shapes


def _memory(n_params):
    """Keras's size of n float32 parameters: B, KB, MB, ... of 1024."""
    size = 4.0 * n_params
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            break
        size /= 1024
    return f"{size:.2f} {unit}"


def _table(name, rows, trainable, fixed):
    widths = [max(31, max(len(r[0]) for r in rows) + 2), max(22, max(len(r[1]) for r in rows) + 2),
              max(13, max(len(r[2]) for r in rows) + 2)]

    def line(left, fill, mid, right):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(cells, edge):
        a, b, c = cells
        return (f"{edge} {a.ljust(widths[0])} {edge} {b.ljust(widths[1])} {edge} "
                f"{c.rjust(widths[2])} {edge}")

    out = [f'Model: "{name}"', line("┏", "━", "┳", "┓"), row(rows[0], "┃"),
           line("┡", "━", "╇", "┩")]
    for i, r in enumerate(rows[1:]):
        if i:
            out.append(line("├", "─", "┼", "┤"))
        out.append(row(r, "│"))
    out.append(line("└", "─", "┴", "┘"))
    total = trainable + fixed
    out += [f" Total params: {total:,} ({_memory(total)})",
            f" Trainable params: {trainable:,} ({_memory(trainable)})",
            f" Non-trainable params: {fixed:,} ({_memory(fixed)})"]
    return out

"""Keras-style callbacks for ``Sequential.fit``.

A callback subclasses ``Callback`` and overrides the hooks it needs
(``on_train_begin``, ``on_epoch_end(epoch, logs)``, ...); ``self.model`` is the
model being trained, and setting ``self.model.stop_training = True`` ends
training after the current batch. The learning rate lives in the
optimizer's parameter groups, as in PyTorch (``optimizer.param_groups[i]["lr"]``).
"""
import csv
import math
import os
import sys
import time

import numpy as np

__all__ = ["Callback", "CSVLogger", "EarlyStopping", "History", "LearningRateScheduler",
           "ModelCheckpoint", "ProgbarLogger", "ReduceLROnPlateau", "TerminateOnNaN",
           "configure"]


class Callback:
    """Base class: every hook does nothing."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


class CallbackList:
    """Calls each callback's hook in order (used by ``fit``)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = []
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: each entry of 'callbacks' must be a "
                                f"fastnn.callbacks.Callback, got {type(cb).__name__}")
            cb.set_model(model)
            cb.set_params(params)
            self.callbacks.append(cb)

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)
        return call


def configure(callbacks, model, epochs, steps, verbose):
    """The CallbackList of one ``fit``: a ProgbarLogger first (unless one is
    given), so that it prints the logs before other callbacks add to them;
    the given callbacks; History last, as in Keras, so that it records what
    the others add. Returns (CallbackList, History)."""
    callbacks = list(callbacks or [])
    history = History()
    progress = [] if any(isinstance(cb, ProgbarLogger) for cb in callbacks) else [ProgbarLogger()]
    params = {"epochs": epochs, "steps": steps, "verbose": verbose}
    return CallbackList(progress + callbacks + [history], model=model, params=params), history


class ProgbarLogger(Callback):
    """Prints training progress, as ``fit``'s ``verbose`` asks (Keras's
    ProgbarLogger): 1, a tqdm bar per epoch on a terminal and one line per
    epoch when the output is not a terminal; 2, one line per epoch; 0,
    nothing. Each line gives, as Keras does, the epoch's time and time per step,
then the samples per second (images or sequences alike) and the logs.
    ``fit`` adds one unless its callbacks hold one."""

    def on_train_begin(self, logs=None):
        self.verbose = int(self.params.get("verbose", 1))
        self.live = self.verbose == 1 and sys.stdout.isatty()
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
        self.samples = self.steps = 0
        self.epoch = epoch
        if self.live:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.params.get("steps"),
                            desc=f"Epoch {epoch + 1}/{self.params.get('epochs')}", unit="step",
                            leave=True, dynamic_ncols=True, file=sys.stdout)

    def on_train_batch_begin(self, batch, logs=None):
        self.samples += (logs or {}).get("size", 0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)
            step = batch + 1
            if step % 10 == 0 or step == self.params.get("steps"):
                self.bar.set_postfix_str(self._summary(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.set_postfix_str(self._summary(logs))
            self.bar.close()
            self.bar = None
        elif self.verbose:
            elapsed = time.perf_counter() - self.start
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {elapsed:.1f}s "
                  f"{self._per_step()} - {_format_logs(logs)}", flush=True)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _per_step(self):
        """Time per step and samples per second so far this epoch."""
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return (f"{1e3 * elapsed / max(self.steps, 1):.0f}ms/step - "
                f"{self.samples / elapsed:,.0f} samples/s")

    def _summary(self, logs):
        return _format_logs(logs) + " - " + self._per_step()


def _format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in (logs or {}).items())


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"][epoch]``."""

    def on_train_begin(self, logs=None):
        self.epoch = getattr(self, "epoch", [])
        self.history = getattr(self, "history", {})

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode_for(monitor, mode, fn):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{fn}: argument 'mode' must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.lower()
        mode = "max" if any(s in name for s in ("acc", "auc", "precision", "recall", "f1")) \
            else "min"
    return mode


class _Monitor:
    """Tracks the best value of ``monitor``; ``improved(value)`` applies min_delta."""

    def __init__(self, monitor, mode, min_delta, fn):
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode, fn)
        self.min_delta = abs(float(min_delta))
        self.reset()

    def reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, value):
        return self.improved_over(value, self.best)

    def improved_over(self, value, reference):
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def value(self, logs, fn):
        if self.monitor not in (logs or {}):
            raise ValueError(f"{fn}: monitor {self.monitor!r} is not among the logged values "
                             f"{sorted(logs or {})} (val_* needs validation data)")
        return float(logs[self.monitor])


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than
    ``min_delta`` for ``patience`` epochs; with ``restore_best_weights`` the
    model gets back the weights of its best epoch (Keras's semantics)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self._monitor = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.monitor = monitor
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None
        self._monitor.reset()

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        value = self._monitor.value(logs, "EarlyStopping")
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _snapshot(self.model)
        self.wait += 1
        if self._monitor.improved(value):
            self._monitor.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            # with a baseline, only values better than it restart the count
            if self.baseline is None or self._monitor.improved_over(value, float(self.baseline)):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping (best {self.monitor} "
                      f"{self._monitor.best:.4f} at epoch {self.best_epoch + 1})")

    @property
    def best(self):
        return self._monitor.best


def _snapshot(model):
    return model.state_dict()  # copies


class ModelCheckpoint(Callback):
    """Saves the model (``model.save``, or ``save_weights`` with
    ``save_weights_only``) after each epoch, or only when ``monitor``
    improved with ``save_best_only``. ``filepath`` may hold ``{epoch}`` and
    log names, formatted as Keras does (``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self._monitor = _Monitor(monitor, mode, 0, "ModelCheckpoint")

    def on_train_begin(self, logs=None):
        self._monitor.reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self._monitor.value(logs, "ModelCheckpoint")
            if not self._monitor.improved(value):
                return
            self._monitor.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved the model to {path}")

    @property
    def best(self):
        return self._monitor.best


def _learning_rate(optimizer):
    return float(optimizer.param_groups[0]["lr"])


def _set_learning_rate(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = float(lr)


def _optimizer(model, fn):
    opt = getattr(model, "optimizer", None)
    if opt is None or isinstance(opt, str):
        model._make_optimizer()
        opt = model.optimizer
    if not hasattr(opt, "param_groups"):
        raise ValueError(f"{fn}: the model has no optimizer with param_groups")
    return opt


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to
    ``schedule(epoch, lr)`` (or ``schedule(epoch)``), epochs counted from 0."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: argument 'schedule' must be callable, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = _optimizer(self.model, "LearningRateScheduler")
        lr = _learning_rate(opt)
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = float(new)
        if not math.isfinite(new):
            raise ValueError(f"LearningRateScheduler: schedule({epoch}) gave {new}")
        _set_learning_rate(opt, new)
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {new:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _learning_rate(_optimizer(self.model, "LearningRateScheduler"))


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not
    improved for ``patience`` epochs, then waits ``cooldown`` epochs; never
    below ``min_lr`` (Keras's semantics)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if not 0.0 < float(factor) < 1.0:
            raise ValueError(f"ReduceLROnPlateau: argument 'factor' must be in (0, 1), got "
                             f"{factor}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self._monitor = _Monitor(monitor, mode, min_delta, "ReduceLROnPlateau")

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.cooldown_counter = 0
        self._monitor.reset()

    def on_epoch_end(self, epoch, logs=None):
        value = self._monitor.value(logs, "ReduceLROnPlateau")
        opt = _optimizer(self.model, "ReduceLROnPlateau")
        logs["learning_rate"] = _learning_rate(opt)  # the rate this epoch ran with, as Keras
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._monitor.improved(value):
            self._monitor.best = value
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                lr = _learning_rate(opt)
                if lr > self.min_lr:
                    new = max(lr * self.factor, self.min_lr)
                    _set_learning_rate(opt, new)
                    if self.verbose:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau set the learning rate to "
                              f"{new:.6g}")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class CSVLogger(Callback):
    """Writes one CSV row per epoch (epoch and every log value) to
    ``filename``; ``append=True`` continues an existing file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._file = None
        self._keys = None

    def on_train_begin(self, logs=None):
        existing = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = None
        self._keys = None
        self._header_written = existing

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator)
            if not self._header_written:
                self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [_csv_value(logs.get(k, "NA")) for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: invalid loss {loss}, terminating training")
            self.model.stop_training = True

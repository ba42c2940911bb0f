"""Interrupted work: Ctrl-C (KeyboardInterrupt, or SIGINT to a training
process) during fit leaves a model that predicts, saves and resumes; a
process killed while it saves (model.save, ModelCheckpoint) never leaves a
torn file at the path: the file there is absent or a complete model."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, models, nn


def _data(n=96, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)


def _model(seed=0):
    fastnn.manual_seed(seed)
    m = models.Sequential([nn.Dense(16, activation="relu"), nn.Dropout(0.3),
                           nn.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


class _InterruptAt(callbacks.Callback):
    """Raises KeyboardInterrupt after the given batch of the given epoch, as
    Ctrl-C arriving there would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def test_keyboard_interrupt_in_fit_leaves_a_model_that_saves_and_resumes(tmp_path):
    x, y = _data()
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[_InterruptAt(1, 2)])
    weights = [p.numpy().copy() for p in model.parameters()]
    assert all(np.isfinite(w).all() for w in weights)

    # inference after the interrupt is inference (no dropout left on), twice the same
    first = model.predict(x)
    np.testing.assert_array_equal(first, model.predict(x))
    path = tmp_path / "interrupted.fastnn"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), first)

    # both go on training from there, the same way, and learn
    loss_before = model.evaluate(x, y)["loss"]
    fastnn.manual_seed(5)  # the same dropout masks for both
    h1 = model.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False)
    fastnn.manual_seed(5)
    h2 = loaded.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], rtol=1e-6)
    assert h1.history["loss"][-1] < loss_before


def test_sigint_to_a_training_process_leaves_a_saved_resumable_model(tmp_path):
    """A real Ctrl-C: SIGINT to a child in the middle of fit. The child
    catches the KeyboardInterrupt, saves, loads and trains on; the parent
    checks the file."""
    path = tmp_path / "after-sigint.fastnn"
    code = f"""
import signal, sys, time
# Ctrl-C as in a terminal, even where this test runs with SIGINT ignored
# (a background job of a non-interactive shell, as CI may be)
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
sys.path.insert(0, {os.path.dirname(__file__)!r})
from test_interrupt import _data, _model
from fastnn import callbacks, models
class Slow(callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print("batch", flush=True)
        time.sleep(0.02)
x, y = _data()
model = _model()
try:
    model.fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[Slow()])
    print("fit ended without the interrupt", flush=True)
    sys.exit(1)
except KeyboardInterrupt:
    pass
model.save({str(path)!r})
again = models.load_model({str(path)!r})
assert np.array_equal(again.predict(x), model.predict(x))
h = again.fit(x, y, batch_size=8, epochs=1, verbose=0)
assert np.isfinite(h.history["loss"][0])
print("resumed", flush=True)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastnn.__file__)), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        batches = 0
        for line in proc.stdout:
            batches += line.strip() == "batch"
            if batches == 15:
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, f"child exited with {proc.returncode}: {err[-3000:]}"
    assert "resumed" in out
    assert models.load_model(path).predict(_data()[0]).shape == (96, 3)


# ---------------------------------------------------------------- killed while saving
SAVE_LOOP = """
import sys
import numpy as np
sys.path.insert(0, {here!r})
from test_interrupt import _data, _model
from fastnn import callbacks
mode, path = sys.argv[1], sys.argv[2]
x, y = _data(n=64)
model = _model()
model.fit(x, y, epochs=1, verbose=0)
if mode == "save":
    i = 0
    while True:
        model.save(path)
        i += 1
        print(i, flush=True)
else:  # ModelCheckpoint after every epoch, as fast as the epochs go
    class Tick(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            print(epoch, flush=True)
    model.fit(x, y, batch_size=64, epochs=10**6, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(path, monitor="loss"), Tick()])
"""


def _kill_during_saves(mode, path, wait_lines, extra_delay):
    """Starts the save loop, waits for `wait_lines` saves, sleeps
    `extra_delay` (so the kill lands anywhere in a save) and SIGKILLs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastnn.__file__)), os.environ.get("PYTHONPATH", "")]))
    code = SAVE_LOOP.format(here=os.path.dirname(__file__))
    proc = subprocess.Popen([sys.executable, "-c", code, mode, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(wait_lines):
            line = proc.stdout.readline()
            assert line, f"the save loop ended early: {proc.stderr.read()[-3000:]}"
        time.sleep(extra_delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("mode", ["save", "checkpoint"])
def test_a_process_killed_while_saving_never_leaves_a_torn_file(tmp_path, mode):
    x, _ = _data(n=64)
    rng = np.random.default_rng(1)
    for trial in range(4):
        path = tmp_path / f"{mode}-{trial}.fastnn"
        _kill_during_saves(mode, path, wait_lines=int(rng.integers(1, 4)),
                           extra_delay=float(rng.uniform(0.0, 0.01)))
        if path.exists():  # absent (killed before the first rename) or complete
            assert models.load_model(path).predict(x).shape == (64, 3)

"""The Keras-style workflow: Sequential.compile/fit/evaluate/predict/summary,
callbacks, and model files (save/load, resume, refusal of damaged or hostile
files)."""
import io
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import callbacks, nn, optim
from fastnn import functional as F
from fastnn.models import Sequential, load_model


# ---------------------------------------------------------------- data and models
def blobs(n=240, seed=0, size=8):
    """Images whose class (0, 1, 2) is the quadrant holding a bright square."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.1, (n, size, size, 1)).astype(np.float32)
    h = size // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * h:(r + 1) * h, q * h:(q + 1) * h, 0] += 1.0
    return x, y


def small_cnn():
    return Sequential([nn.Conv2D(4, 3, activation="relu", padding="same"), nn.MaxPooling2D(),
                       nn.Flatten(), nn.Dense(3, activation="softmax")])


def small_mlp():
    return Sequential([nn.Dense(8, activation="relu"), nn.Dense(3, activation="softmax")])


def table(n=64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y


def weights(model):
    return model.state_dict()  # copies


# ---------------------------------------------------------------- fit / evaluate / predict
def test_fit_trains_a_cnn_to_high_accuracy():
    fastnn.manual_seed(0)
    x, y = blobs()
    model = small_cnn()
    model.compile(optimizer=optim.Adam(small_cnn_params(model, x), lr=0.02),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert hist.history["accuracy"][-1] >= 0.95
    xt, yt = blobs(90, seed=1)
    assert model.evaluate(xt, yt)["accuracy"] >= 0.95


def test_fit_trains_an_lstm_to_high_accuracy():
    """Sequences whose class is the sign of their sum."""
    fastnn.manual_seed(13)
    rng = np.random.default_rng(13)
    x = rng.normal(size=(320, 12, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = Sequential([nn.LSTM(8), nn.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.build(x.shape)
    model.optimizer = optim.Adam(model.parameters(), lr=0.03)
    hist = model.fit(x[:256], y[:256], batch_size=32, epochs=12, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    assert model.evaluate(x[256:], y[256:])["accuracy"] >= 0.85   # chance is 0.5


def small_cnn_params(model, x):
    model.build(x.shape)
    return model.parameters()


def test_named_optimizer_is_made_once_the_model_is_built():
    fastnn.manual_seed(1)
    x, y = table()
    model = small_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert isinstance(model.optimizer, optim.Adam)
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_evaluate_matches_the_loss_and_accuracy_of_predict():
    fastnn.manual_seed(2)
    x, y = table(50)
    model = small_mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probs = model.predict(x, batch_size=7)
    assert probs.shape == (50, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    want_loss = np.mean(-np.log(np.clip(probs[np.arange(50), y], 1e-7, 1 - 1e-7)))
    got = model.evaluate(x, y, batch_size=7)
    assert set(got) == {"loss", "accuracy"}
    assert got["loss"] == pytest.approx(want_loss, rel=1e-5)
    assert got["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))


def test_validation_split_holds_out_the_last_samples():
    fastnn.manual_seed(3)
    x, y = table(40)
    model = small_mlp()
    model.build(x.shape)
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.0), metrics=["accuracy"])
    hist = model.fit(x, y, batch_size=8, epochs=1, validation_split=0.25, verbose=0)
    want = model.evaluate(x[30:], y[30:])
    assert hist.history["val_loss"][0] == pytest.approx(want["loss"], rel=1e-6)
    assert hist.history["val_accuracy"][0] == pytest.approx(want["accuracy"])
    assert hist.history["loss"][0] == pytest.approx(model.evaluate(x[:30], y[:30])["loss"],
                                                    rel=1e-5)


def test_class_weight_weights_each_sample_loss():
    fastnn.manual_seed(4)
    x, y = table(24)
    model = small_mlp()
    model.build(x.shape)
    model.compile(optimizer=optim.SGD(model.parameters(), lr=0.0))
    probs = model.predict(x)
    per_sample = -np.log(np.clip(probs[np.arange(24), y], 1e-7, 1 - 1e-7))
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    hist = model.fit(x, y, batch_size=24, epochs=1, shuffle=False, class_weight=cw, verbose=0)
    want = np.mean(per_sample * np.array([cw[c] for c in y]))
    assert hist.history["loss"][0] == pytest.approx(want, rel=1e-5)


def test_fit_accepts_an_iterable_of_batches():
    fastnn.manual_seed(5)
    x, y = table(64)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    model = small_mlp()
    model.compile(optimizer="adam", metrics=["accuracy"])
    hist = model.fit(batches, epochs=3, verbose=0)
    assert len(hist.history["loss"]) == 3
    assert hist.history["loss"][2] < hist.history["loss"][0]


def test_training_metrics_by_name():
    fastnn.manual_seed(6)
    x, y = table(60)
    model = small_mlp()
    model.compile(optimizer="adam", metrics=["accuracy", "precision", "recall", "f1", "auc"])
    hist = model.fit(x, y, batch_size=60, epochs=1, validation_data=(x, y), verbose=0,
                     shuffle=False)
    for k in ("accuracy", "precision", "recall", "f1", "auc"):
        assert 0.0 <= hist.history[k][0] <= 1.0
        assert 0.0 <= hist.history["val_" + k][0] <= 1.0
    probs = model.predict(x)
    from fastnn import metrics
    assert hist.history["val_f1"][0] == pytest.approx(
        metrics.f1_score(y, probs.argmax(1), average="macro", zero_division=0))
    assert hist.history["val_auc"][0] == pytest.approx(
        metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro"))


@pytest.mark.parametrize("case", ["length", "label_range", "image_shape", "label_kind"])
def test_bad_fit_input_raises_before_any_step(case):
    fastnn.manual_seed(7)
    x, y = blobs(20)
    model = small_cnn()
    model.build(x.shape)
    model.compile(optimizer=optim.Adam(model.parameters(), lr=0.1))
    before = weights(model)
    if case == "length":
        args, match = (x, y[:-1]), "same number of samples"
    elif case == "label_range":
        bad = y.copy()
        bad[3] = 3
        args, match = (x, bad), r"labels in 'y' must be in \[0, 3\)"
    elif case == "image_shape":
        args, match = (x[..., :1].repeat(2, axis=3), y), "channels"
    else:
        args, match = (x, y + 0.5), "integer class labels"
    with pytest.raises(ValueError, match=match):
        model.fit(*args, epochs=1, verbose=0)
    after = weights(model)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def _binary_weights_after_training(loss, x, y):
    fastnn.manual_seed(3)
    model = Sequential([nn.Dense(6, activation="relu"), nn.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss=loss)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model.state_dict(), model.evaluate(x, y)["loss"]


def test_a_loss_object_a_loss_function_and_a_name_train_identically():
    # every form of loss is called as loss(y_true, y_pred), Keras's order
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:2] > 0).astype(np.float32)
    from fastnn import losses

    def keras_style(y_true, y_pred):
        return losses.binary_crossentropy(y_true, y_pred)

    by_name, loss_by_name = _binary_weights_after_training("binary_crossentropy", x, y)
    assert loss_by_name < 0.75  # it trains (a swapped order gives a loss of about 7.6)
    for loss in (losses.BinaryCrossentropy(), losses.get("binary_crossentropy"),
                 losses.BinaryCrossentropy, keras_style):
        got, got_loss = _binary_weights_after_training(loss, x, y)
        assert got.keys() == by_name.keys()
        for k in by_name:
            np.testing.assert_array_equal(got[k], by_name[k], err_msg=f"{loss!r}: {k}")
        assert got_loss == loss_by_name


def test_compile_rejects_unknown_names():
    model = small_mlp()
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(loss="hinge_of_doom")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="adamax2")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(metrics=["speed"])
    with pytest.raises(RuntimeError, match="compile"):
        small_mlp().fit(*table(), verbose=0)


def test_summary_lists_layers_shapes_and_parameter_counts():
    model = Sequential([nn.Conv2D(4, 3, padding="same"), nn.MaxPooling2D(), nn.Flatten(),
                        nn.Dense(3)])
    with pytest.raises(ValueError, match="not been built"):
        model.summary()
    model.build((None, 8, 8, 2))
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert "(None, 8, 8, 4)" in text and "(None, 4, 4, 4)" in text and "(None, 64)" in text
    assert f"Total params: {3 * 3 * 2 * 4 + 4 + 64 * 3 + 3:,}" in text


def test_progress_prints_one_line_per_epoch_off_a_terminal(capsys):
    x, y = table(32)
    model = small_mlp()
    model.compile(optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2") and "accuracy:" in out[0]
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""



def test_progress_is_a_callback_that_fit_adds_once(capsys):
    x, y = table(48)
    model = small_mlp()
    model.compile(optimizer="adam")

    class Rate(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["lr"] = 0.5  # added after the progress line is printed

    progress = callbacks.ProgbarLogger()
    model.fit(x, y, epochs=3, batch_size=16, verbose=2, callbacks=[progress, Rate()])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and all(line.startswith(f"Epoch {i + 1}/3") for i, line in enumerate(out))
    assert all("loss:" in line and "lr:" not in line for line in out)
    assert progress.samples == 48 and progress.steps == 3 and progress.model is model


def test_a_bidirectional_recurrent_model_saves_and_loads(tmp_path):
    x = np.random.default_rng(1).normal(size=(8, 5, 3)).astype(np.float32)
    model = Sequential([nn.Bidirectional(nn.LSTM(4)), nn.Dense(2, activation="softmax")])
    model.compile(optimizer="adam")
    model.fit(x, np.arange(8) % 2, epochs=1, verbose=0)
    model.save(tmp_path / "bi.npz")
    again = load_model(tmp_path / "bi.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_progress_gives_time_per_step_and_samples_not_images(capsys):
    """Keras's line: time per step; a rate in samples (sequences are no images)."""
    x = np.random.default_rng(0).normal(size=(40, 5, 3)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = Sequential([nn.LSTM(4), nn.Dense(2, activation="softmax")])
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, batch_size=10, verbose=2)
    line = capsys.readouterr().out.strip()
    assert re.search(r"Epoch 1/1 - [\d.]+s \d+ms/step - [\d,]+ samples/s - loss: ", line), line
    assert "img/s" not in line

# ---------------------------------------------------------------- callbacks
class FeedLogs(callbacks.Callback):
    """Replaces the monitored value with a scripted sequence and records the
    weights at each epoch's end."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key, self.seen = values, key, []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.seen.append(weights(self.model))


def fitted_with(cbs, epochs, **kw):
    fastnn.manual_seed(8)
    x, y = table(32)
    model = small_mlp()
    model.compile(optimizer="adam")
    hist = model.fit(x, y, batch_size=16, epochs=epochs, callbacks=cbs, verbose=0, **kw)
    return model, hist


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    feed = FeedLogs([5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 1.0])
    stop = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model, hist = fitted_with([feed, stop], epochs=7)
    assert len(hist.history["loss"]) == 5          # epochs 3 and 4 did not improve
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2 and stop.best == 3.0
    best = feed.seen[2]
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, best[k])


def test_early_stopping_min_delta_and_mode_max():
    feed = FeedLogs([0.5, 0.505, 0.509, 0.9], key="val_accuracy")
    stop = callbacks.EarlyStopping(monitor="val_accuracy", min_delta=0.01, patience=2)
    _, hist = fitted_with([feed, stop], epochs=4)
    assert len(hist.history["loss"]) == 3 and stop.stopped_epoch == 2


def test_model_checkpoint_saves_only_improvements(tmp_path):
    feed = FeedLogs([3.0, 2.0, 2.5, 1.0])
    path = tmp_path / "best.npz"
    saved = []

    class Spy(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append(os.path.getmtime(path) if path.exists() else None)
            if path.exists():
                got = load_model(path)
                want = feed.seen[epoch]
                self.match = all(np.array_equal(v, want[k]) for k, v in weights(got).items())
            else:
                self.match = None

    spy = Spy()
    best_epochs = []

    class Mark(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            best_epochs.append(spy.match)

    ck = callbacks.ModelCheckpoint(path, save_best_only=True)
    fitted_with([feed, ck, spy, Mark()], epochs=4)
    assert best_epochs == [True, True, False, True]
    assert ck.best == 1.0


def test_learning_rate_scheduler_sets_each_epoch():
    seen = []

    class Record(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.optimizer.param_groups[0]["lr"])

    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 * 0.5 ** epoch)
    _, hist = fitted_with([sched, Record()], epochs=3)
    assert seen == pytest.approx([0.1, 0.05, 0.025])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])


def test_reduce_lr_on_plateau_follows_patience_and_cooldown():
    feed = FeedLogs([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    red = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=1e-4)
    model, hist = fitted_with([feed, red], epochs=6)
    # Keras's counting: no improvement at epochs 1 and 2, halved after epoch 2; epoch 3
    # ends the cooldown and counts 1, epoch 4 counts 2 and halves again. The logs hold
    # the rate each epoch ran with.
    assert hist.history["learning_rate"] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4)


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    _, hist = fitted_with([callbacks.CSVLogger(path)], epochs=3)
    rows = path.read_text().strip().splitlines()
    assert rows[0] == "epoch,loss"
    assert [float(r.split(",")[1]) for r in rows[1:]] == pytest.approx(hist.history["loss"])
    fitted_with([callbacks.CSVLogger(path, append=True)], epochs=2)
    assert len(path.read_text().strip().splitlines()) == 6


# ---------------------------------------------------------------- files
def test_save_and_load_give_identical_predictions(tmp_path):
    fastnn.manual_seed(9)
    x, y = blobs(48)
    model = Sequential([nn.Conv2D(4, 3, activation="relu", padding="same"),
                        nn.BatchNormalization(), nn.MaxPooling2D(), nn.Flatten(),
                        nn.Dropout(0.25),
                        nn.Dense(3, activation="softmax",
                                 kernel_regularizer=fastnn.regularizers.l2(0.01))])
    model.compile(optimizer="rmsprop", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model.save(tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]       # no temporary left
    again = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    assert isinstance(again.optimizer, optim.RMSprop)
    assert again[-1].kernel_regularizer.l2 == pytest.approx(0.01)
    assert again.evaluate(x, y) == model.evaluate(x, y)


def test_save_weights_and_load_weights(tmp_path):
    fastnn.manual_seed(10)
    x, _ = table(10)
    a, b = small_mlp(), small_mlp()
    a.build(x.shape)
    b.build(x.shape)
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    c = Sequential([nn.Dense(9), nn.Dense(3)])
    c.build(x.shape)
    with pytest.raises(ValueError, match="shape"):
        c.load_weights(tmp_path / "w.npz")


def test_resumed_training_equals_uninterrupted(tmp_path):
    x, y = blobs(64)

    def run(epochs, model=None):
        if model is None:
            fastnn.manual_seed(11)
            model = small_cnn()
            model.compile(optimizer="adam")
        return model

    full = run(4)
    full.fit(x, y, batch_size=16, epochs=4, verbose=0)
    part = run(2)
    part.fit(x, y, batch_size=16, epochs=2, verbose=0)
    part.save(tmp_path / "ckpt.npz")
    resumed = load_model(tmp_path / "ckpt.npz")
    resumed.fit(x, y, batch_size=16, epochs=4, initial_epoch=2, verbose=0)
    want = weights(full)
    for k, v in weights(resumed).items():
        np.testing.assert_allclose(v, want[k], rtol=1e-5, atol=1e-6)


def test_torn_and_foreign_files_are_refused(tmp_path):
    fastnn.manual_seed(12)
    x, y = table(16)
    model = small_mlp()
    model.compile(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    model.save(path)
    data = path.read_bytes()
    torn = tmp_path / "torn.npz"
    torn.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="damaged|not a fastnn"):
        load_model(torn)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastnn model"):
        load_model(plain)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-fastnn-test",))


def test_hostile_files_run_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a bare pickle under a model file's name
    raw = tmp_path / "evil.npz"
    raw.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError):
        load_model(raw)
    # an archive whose entry is a pickled object array
    buf = io.BytesIO()
    np.save(buf, np.array([Payload()], dtype=object), allow_pickle=True)
    boxed = tmp_path / "boxed.npz"
    with zipfile.ZipFile(boxed, "w") as z:
        z.writestr("__fastnn__.npy", buf.getvalue())
    with pytest.raises(ValueError):
        load_model(boxed)
    # a valid archive naming a class outside fastnn
    doc = ('{"format": "fastnn.model", "version": 1, "input_shape": [3], '
           '"model": {"layers": [{"class_name": "Popen", "config": {"args": "touch x"}}]}}')
    forged = tmp_path / "forged.npz"
    np.savez(forged, __fastnn__=np.frombuffer(doc.encode(), np.uint8))
    with pytest.raises(ValueError, match="unknown layer class 'Popen'"):
        load_model(forged)
    assert not (tmp_path / "pwned-by-fastnn-test").exists()
    assert not (tmp_path / "x").exists()


def test_a_layer_with_a_python_callable_cannot_be_saved(tmp_path):
    model = Sequential([nn.Dense(3, activation=lambda t: t * 2)])
    model.build((None, 4))
    with pytest.raises(TypeError, match="activation"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []

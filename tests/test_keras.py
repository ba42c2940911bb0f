"""fastnn.keras: the tutorial's Keras code run with only `tensorflow` ->
`fastnn` in its imports (and fewer epochs) on a small CIFAR-10 folder in a
temporary Keras cache; Keras 3's contract (History, evaluate's return
values, predict, names, summary); the optimizers' Keras defaults and their
update maths against fastnn.optim; the smaller modules."""
import inspect
import os
import pickle
import re

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.keras import layers, losses, metrics, models, optimizers, utils
from fastnn.keras.backend import clear_session

TUTORIAL = """
import tensorflow as tf
from tensorflow.keras.datasets import cifar10
from tensorflow.keras.preprocessing.image import ImageDataGenerator
(x_train, y_train), (x_test, y_test) = cifar10.load_data()
x_train, x_test = x_train / 255.0, x_test / 255.0
datagen = ImageDataGenerator(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True)
datagen.fit(x_train)
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Conv2D, MaxPooling2D, Flatten, Dense
model = Sequential([
    Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)), MaxPooling2D((2, 2)),
    Conv2D(64, (3, 3), activation='relu'), MaxPooling2D((2, 2)),
    Conv2D(128, (3, 3), activation='relu'), MaxPooling2D((2, 2)),
    Flatten(), Dense(512, activation='relu'), Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
model.fit(datagen.flow(x_train, y_train, batch_size=64), epochs=10, validation_data=(x_test, y_test))
"""


def as_fastnn(code, epochs):
    """The tutorial with `tensorflow` -> `fastnn` in its import lines and the
    epoch count changed: nothing else."""
    lines = [re.sub(r"\btensorflow\b", "fastnn", line) if line.startswith(("import ", "from "))
             else line for line in code.splitlines()]
    return "\n".join(lines).replace("epochs=10", f"epochs={epochs}")


def write_keras_cifar(home, per_batch=24, n_test=20, seed=0):
    """A small CIFAR-10 set in ~/.keras/datasets/cifar-10-batches-py, each
    batch pickled by Python 3 (protocol 2); the class is the brightest
    channel, so a network can learn something in two epochs."""
    folder = home / ".keras" / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        y = rng.permutation(np.arange(n) % 10)  # every class in every batch
        x = rng.integers(0, 120, (n, 3, 32, 32), dtype=np.uint8)
        x[np.arange(n), y % 3] += 100
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
                 b"data": x.reshape(n, -1), b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """HOME pointed at a temporary folder holding ~/.keras/datasets/..."""
    home = tmp_path / "home"
    write_keras_cifar(home)  # 120 training and 20 test images
    empty = tmp_path / "no_fastnn_data"
    empty.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("FASTNN_DATA", str(empty))
    return home


def test_the_tutorial_runs_as_written(keras_home, capsys):
    fastnn.manual_seed(0)
    clear_session()
    scope = {}
    exec(compile(as_fastnn(TUTORIAL, epochs=2), "tutorial", "exec"), scope)
    model, x_test, y_test = scope["model"], scope["x_test"], scope["y_test"]
    assert scope["x_train"].shape == (120, 32, 32, 3)
    # fit returned Keras's History and kept it as model.history
    history = model.history
    assert isinstance(history, fastnn.keras.callbacks.History)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in history.history.values())
    assert history.epoch == [0, 1]
    assert all(np.isfinite(v).all() for v in history.history.values())
    # evaluate: [loss, accuracy]
    result = model.evaluate(x_test, y_test, verbose=0)
    assert isinstance(result, list) and len(result) == 2
    loss, accuracy = result
    assert np.isfinite(loss) and loss > 0 and 0 <= accuracy <= 1
    assert result == pytest.approx([history.history["val_loss"][-1],
                                    history.history["val_accuracy"][-1]], rel=1e-5)
    # predict: probabilities, batches of 32 by default
    probs = model.predict(x_test, verbose=0)
    assert probs.shape == (20, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert (probs >= 0).all()
    # `import fastnn as tf` gives tf.keras; compile(optimizer="adam") is Keras's Adam
    tf = scope["tf"]
    assert tf.keras.models.Sequential is models.Sequential
    assert isinstance(model.optimizer, optimizers.Adam)
    assert model.optimizer.param_groups[0]["eps"] == pytest.approx(1e-7)
    assert [layer.name for layer in model.layers] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "conv2d_2",
        "max_pooling2d_2", "flatten", "dense", "dense_1"]


# Keras 3's documented signatures: (argument, default) in order
KERAS3_DEFAULTS = {
    "SGD": [("learning_rate", 0.01), ("momentum", 0.0), ("nesterov", False)],
    "RMSprop": [("learning_rate", 0.001), ("rho", 0.9), ("momentum", 0.0), ("epsilon", 1e-7),
                ("centered", False)],
    "Adagrad": [("learning_rate", 0.001), ("initial_accumulator_value", 0.1),
                ("epsilon", 1e-7)],
    "Adam": [("learning_rate", 0.001), ("beta_1", 0.9), ("beta_2", 0.999), ("epsilon", 1e-7),
             ("amsgrad", False)],
    "AdamW": [("learning_rate", 0.001), ("weight_decay", 0.004), ("beta_1", 0.9),
              ("beta_2", 0.999), ("epsilon", 1e-7), ("amsgrad", False)],
}


@pytest.mark.parametrize("name", sorted(KERAS3_DEFAULTS))
def test_optimizer_arguments_and_defaults_are_keras3s(name):
    cls = getattr(optimizers, name)
    params = inspect.signature(cls).parameters
    want = KERAS3_DEFAULTS[name]
    assert list(params)[:len(want)] == [arg for arg, _ in want]
    for arg, default in want:
        assert params[arg].default == default, (name, arg)
    assert cls().get_config()["learning_rate"] == want[0][1]
    assert optimizers.get(name.lower()).get_config() == cls().get_config()


def run_steps(opt, seed=0, steps=4):
    """Weights after `steps` updates of a fixed sequence of gradients."""
    rng = np.random.default_rng(seed)
    w = fastnn.tensor(rng.normal(size=(3, 5)).astype(np.float32), requires_grad=True)
    if isinstance(opt, optimizers.Optimizer):
        opt.build([w])
    else:
        opt = opt([w])
    for _ in range(steps):
        w.grad = fastnn.tensor(rng.normal(size=(3, 5)).astype(np.float32))
        opt.step()
    return w.numpy()


@pytest.mark.parametrize("keras_opt, fastnn_opt", [
    (lambda: optimizers.SGD(), lambda p: optim.SGD(p, lr=0.01)),
    (lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
     lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    (lambda: optimizers.RMSprop(), lambda p: optim.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7)),
    (lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True),
     lambda p: optim.RMSprop(p, lr=0.01, alpha=0.8, eps=1e-7, momentum=0.5, centered=True)),
    (lambda: optimizers.Adagrad(),
     lambda p: optim.Adagrad(p, lr=1e-3, initial_accumulator_value=0.1, eps=1e-7)),
    (lambda: optimizers.Adam(), lambda p: optim.Adam(p, lr=1e-3, eps=1e-7)),
    (lambda: optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-5, amsgrad=True),
     lambda p: optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-5, amsgrad=True)),
    (lambda: optimizers.AdamW(), lambda p: optim.AdamW(p, lr=1e-3, eps=1e-7,
                                                        weight_decay=0.004)),
], ids=["sgd", "sgd-nesterov", "rmsprop", "rmsprop-centered", "adagrad", "adam", "adam-args",
        "adamw"])
def test_optimizers_make_fastnn_optims_updates(keras_opt, fastnn_opt):
    np.testing.assert_array_equal(run_steps(keras_opt()), run_steps(fastnn_opt))


def test_optimizer_clipping_and_learning_rate():
    w = fastnn.tensor(np.zeros(4, np.float32), requires_grad=True)
    opt = optimizers.SGD(learning_rate=1.0, clipnorm=1.0)
    opt.build([w])
    w.grad = fastnn.tensor(np.array([3.0, 4.0, 0.0, 0.0], np.float32))
    opt.step()
    np.testing.assert_allclose(w.numpy(), [-0.6, -0.8, 0, 0], rtol=1e-6)
    opt = optimizers.SGD(learning_rate=1.0, clipvalue=0.5)
    opt.build([w])
    w.grad = fastnn.tensor(np.array([3.0, -4.0, 0.25, 0.0], np.float32))
    opt.step()
    np.testing.assert_allclose(w.numpy(), [-1.1, -0.3, -0.25, 0], rtol=1e-6)
    opt.learning_rate = 0.1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and opt.learning_rate == 0.1
    for bad in (dict(learning_rate=-1.0), dict(clipnorm=0), dict(clipnorm=1, clipvalue=1),
                dict(weight_decay=0.1)):
        with pytest.raises(ValueError):
            optimizers.SGD(**bad)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get("adamax")
    with pytest.raises(RuntimeError, match="build"):
        optimizers.Adam().step()


def test_layers_are_named_as_keras_names_them(capsys):
    clear_session()
    model = models.Sequential([
        layers.Input(shape=(8, 8, 3)),
        layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(4, 3, padding="same", name="mine"), layers.BatchNormalization(),
        layers.Flatten(), layers.Dense(6), layers.Dropout(0.5), layers.Dense(2)])
    assert model.name == "sequential"
    assert [layer.name for layer in model.layers] == [
        "conv2d", "max_pooling2d", "mine", "batch_normalization", "flatten", "dense", "dropout",
        "dense_1"]
    assert models.Sequential().name == "sequential_1"
    assert layers.Conv2D(1, 1).name == "conv2d_1"
    assert model.get_layer("mine") is model.layers[2]
    images = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(fastnn.explain.grad_cam(model, images, layer="mine"),
                                  fastnn.explain.grad_cam(model, images))  # the last Conv2D
    # built from Input at once: summary prints Keras's table
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    assert re.search(r"Layer \(type\)\s+┃ Output Shape\s+┃\s+Param #", out)
    assert re.search(r"conv2d \(Conv2D\)\s+│ \(None, 6, 6, 4\)\s+│\s+112 │", out)
    assert re.search(r"batch_normalization \(BatchNormalization\)\s+│ \(None, 3, 3, 4\)\s+│"
                     r"\s+16 │", out)
    assert re.search(r"dense_1 \(Dense\)\s+│ \(None, 2\)\s+│\s+14 │", out)
    total = 112 + 148 + 16 + 36 * 6 + 6 + 14
    assert f" Total params: {total:,} ({total * 4 / 1024:.2f} KB)" in out
    assert f" Trainable params: {total - 8:,}" in out
    assert " Non-trainable params: 8 (32.00 B)" in out
    # names survive as labels only: a saved model reloads with fresh Keras names
    clear_session()
    assert layers.Dense(1).name == "dense"
    with pytest.raises(ValueError, match="first layer"):
        models.Sequential([layers.Dense(2), layers.Input(shape=(3,))])


def small_model():
    fastnn.manual_seed(1)
    return models.Sequential([layers.Dense(8, activation="relu", input_shape=(4,)),
                              layers.Dense(3, activation="softmax")])


def small_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def test_evaluate_fit_predict_follow_keras3(tmp_path):
    x, y = small_data()
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(model.optimizer, optimizers.SGD)
    history = model.fit(x, y, epochs=3, verbose=0, validation_split=0.25)
    assert history is model.history and set(history.history) == {"loss", "val_loss"}
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01),
                  loss=losses.SparseCategoricalCrossentropy(),
                  metrics=[metrics.SparseCategoricalAccuracy(), "auc"])
    model.fit(x, y, batch_size=None, epochs=2, verbose=0)
    values = model.evaluate(x, y, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "auc"] and values == list(logs.values())
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert logs["accuracy"] == pytest.approx(np.mean(probs.argmax(axis=1) == y))
    # a loss object with from_logits, and a Keras-order callable
    logits = models.Sequential([layers.Dense(3, input_shape=(4,))])
    logits.compile(optimizer="adam",
                   loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = []

    def keras_order(y_true, y_pred):
        seen.append((y_true.shape, y_pred.shape))
        one_hot = utils.to_categorical(np.asarray(y_true.numpy()), num_classes=3)
        return losses.mean_squared_error(one_hot, y_pred)
    model.compile(optimizer="adam", loss=keras_order)
    model.fit(x, y, epochs=1, batch_size=40, verbose=0)
    assert seen[0] == ((40,), (40, 3))
    # save and load: Keras classes, Keras names, same predictions
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = models.load_model(path)
    assert isinstance(loaded, models.Sequential)
    assert [type(layer) for layer in loaded.layers] == [layers.Dense, layers.Dense]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    for bad in (dict(loss_weights=[1.0]), dict(loss=None)):
        with pytest.raises(ValueError):
            model.compile(**{"optimizer": "adam", "loss": "mse", **bad})
    with pytest.raises(ValueError, match="sample_weight"):
        model.fit(x, y, sample_weight=np.ones(len(x)), verbose=0)


def test_import_fastnn_as_tf():
    import fastnn as tf
    assert tf.keras is fastnn.keras
    assert tf.keras.layers.Conv2D.__mro__[1] is fastnn.nn.Conv2D
    assert set(fastnn.keras.layers.__all__) >= {
        name for name in fastnn.nn.__all__
        if isinstance(getattr(fastnn.nn, name), type)
        and issubclass(getattr(fastnn.nn, name), fastnn.nn.Layer)}
    assert {"Input", "InputLayer"} <= set(fastnn.keras.layers.__all__)
    from fastnn.keras.preprocessing.image import ImageDataGenerator
    assert ImageDataGenerator is fastnn.data.ImageDataGenerator
    assert tf.keras.datasets.mnist.load_data is fastnn.datasets.mnist.load_data
    assert tf.keras.activations.get("relu") is fastnn.nn.get_activation("relu")
    assert tf.keras.regularizers.l2 is fastnn.regularizers.l2
    assert tf.explain is fastnn.explain


def test_keras_datasets_missing_data_names_keras_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for loader, file in ((fastnn.keras.datasets.cifar10, "cifar-10-python.tar.gz"),
                         (fastnn.keras.datasets.mnist, "mnist.npz")):
        with pytest.raises(FileNotFoundError) as e:
            loader.load_data()
        assert file in str(e.value)
        assert os.path.join(str(tmp_path / "keras"), "datasets") in str(e.value)


def test_to_categorical_and_metrics():
    np.testing.assert_array_equal(utils.to_categorical([2, 0, 1]), np.eye(3, dtype=np.float32)
                                  [[2, 0, 1]])
    out = utils.to_categorical(np.array([[1], [3]]), num_classes=5)
    assert out.shape == (2, 5) and out.dtype == np.float32 and out[1, 3] == 1
    with pytest.raises(ValueError, match="num_classes"):
        utils.to_categorical([0, 4], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        utils.to_categorical([0.5])
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([1, 0], [[0.2, 0.8], [0.3, 0.7]])
    m.update_state([[1]], [[0.1, 0.9]])
    assert m.result() == pytest.approx(2 / 3) and m.name == "sparse_categorical_accuracy"
    m.reset_state()
    assert m.result() == 0.0
    assert metrics.Precision()([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.5)
    assert metrics.Recall()([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.5)
    assert metrics.AUC()([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.75)  # 3 of 4 pairs
    assert metrics.CategoricalAccuracy()([[0, 1], [1, 0]], [[0.1, 0.9], [0.2, 0.8]]) == 0.5
    assert metrics.BinaryAccuracy()([1, 0], [0.7, 0.6]) == 0.5
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get("bleu")


def test_the_example_runs_on_a_keras_cache_folder(keras_home, tmp_path):
    """examples/cifar10_cnn.py end to end, on the small folder (one epoch):
    its report, the model file, and both pictures when matplotlib is there."""
    import importlib.util
    import subprocess
    import sys
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                          "cifar10_cnn.py")
    run = subprocess.run([sys.executable, script, "--data", "keras", "--epochs", "1",
                          "--out", str(tmp_path / "run")], capture_output=True, text=True,
                         env=dict(os.environ), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for line in ("test accuracy", "precision", "recall", "F1", "ROC AUC", "images/s"):
        assert line in run.stdout
    loaded = models.load_model(str(tmp_path / "run.npz"))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
        "Dense", "Dense"]
    assert loaded.layers[2].kernel.shape == (3, 3, 32, 64)
    assert loaded.layers[7].kernel.shape == (512, 512)  # valid padding: 2 x 2 x 128 features
    if importlib.util.find_spec("matplotlib") is not None:
        for picture in ("run.png", "run_gradcam.png"):
            assert (tmp_path / picture).stat().st_size > 10_000


def test_keras_gru_defaults_to_keras3s_reset_after():
    """Keras 3's GRU applies the reset gate after the recurrent product (bias
    (2, 3 units)); fastnn.nn.GRU keeps the textbook form by default."""
    from fastnn import nn
    from fastnn.keras import layers as K
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    gru = K.GRU(5)
    gru(x)
    assert gru.bias.shape == (2, 15) and inspect.signature(K.GRU).parameters[
        "reset_after"].default is True
    plain = K.GRU(5, reset_after=False)
    plain(x)
    assert plain.bias.shape == (15,)
    assert inspect.signature(nn.GRU).parameters["reset_after"].default is False

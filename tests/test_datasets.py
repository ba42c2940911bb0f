"""fastnn.datasets: the CIFAR-10 reader (archives written here in the
official format: Python 2 pickles of dicts of byte strings and NumPy arrays,
in cifar-10-batches-py/ inside a .tar.gz, and as Python 3 re-saves them),
where it looks (a path, $FASTNN_DATA, Keras's cache), its errors and its
refusal of hostile pickles; the MNIST reader; the generated shapes set
(shape, balance, determinism, the cache and the drawing's geometry)."""
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

from fastnn.datasets import cifar10, data_dir, keras_dir, mnist, shapes

# ================================================================ CIFAR-10 files


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle did for the official files: protocol 2,
    every string a byte string (BINSTRING), and NumPy arrays rebuilt by
    numpy.core.multiarray._reconstruct."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_string(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def py2_pickle(obj):
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch_bytes(x, y, label="training batch"):
    """An official batch: 'data' (n, 3072) uint8 rows of red, green and blue
    32x32 planes, 'labels' a list of ints."""
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), -1))
    return py2_pickle({"batch_label": label, "labels": [int(v) for v in y], "data": data,
                       "filenames": [f"img_{i}.png" for i in range(len(x))]})


def small_cifar(seed=0, per_batch=7, n_test=5):
    """{file name: bytes} of a small CIFAR-10 set, and its arrays."""
    rng = np.random.default_rng(seed)
    files, xs, ys = {}, [], []
    for name in cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,):
        n = n_test if name == cifar10.TEST_BATCH else per_batch
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        files[name] = batch_bytes(x, y)
        xs.append(x)
        ys.append(y)
    files["batches.meta"] = py2_pickle({"label_names": list(cifar10.CLASS_NAMES),
                                        "num_cases_per_batch": per_batch, "num_vis": 3072})
    arrays = ((np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5]))
    return files, arrays


def write_folder(root, files):
    folder = os.path.join(root, cifar10.FOLDER)
    os.makedirs(folder)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return folder


def write_archive(root, files, name=cifar10.ARCHIVE):
    path = os.path.join(root, name)
    with tarfile.open(path, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{member}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def assert_loaded(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    (wx, wy), (wxt, wyt) = arrays
    for got, want, name in ((x_train, wx, "x_train"), (x_test, wxt, "x_test")):
        assert got.dtype == np.uint8 and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    for got, want, name in ((y_train, wy, "y_train"), (y_test, wyt, "y_test")):
        assert got.dtype == np.int64 and got.shape == (len(want), 1), name
        np.testing.assert_array_equal(got.ravel(), want, err_msg=name)


@pytest.fixture
def no_data_dir(tmp_path, monkeypatch):
    """$FASTNN_DATA and $KERAS_HOME pointing to an empty folder."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASTNN_DATA", str(empty))
    monkeypatch.setenv("KERAS_HOME", str(empty))
    return empty


def test_cifar10_reads_the_archive_from_every_kind_of_path(tmp_path, monkeypatch, no_data_dir):
    files, arrays = small_cifar()
    archive = write_archive(str(tmp_path), files)
    assert_loaded(cifar10.load_data(archive), arrays)
    assert_loaded(cifar10.load_data(str(tmp_path)), arrays)  # the folder holding it
    assert_loaded(cifar10.load_data(tmp_path), arrays)  # os.PathLike
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    assert_loaded(cifar10.load_data(), arrays)


def test_cifar10_reads_the_extracted_folder(tmp_path, monkeypatch, no_data_dir):
    files, arrays = small_cifar(seed=1)
    folder = write_folder(str(tmp_path), files)
    assert_loaded(cifar10.load_data(folder), arrays)
    assert_loaded(cifar10.load_data(str(tmp_path)), arrays)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    assert_loaded(cifar10.load_data(), arrays)


def test_cifar10_missing_data_says_where_to_put_it(tmp_path, no_data_dir):
    for path in (None, str(tmp_path / "nowhere"), str(tmp_path)):
        with pytest.raises(FileNotFoundError) as e:
            cifar10.load_data(path)
        message = str(e.value)
        assert cifar10.URL in message and cifar10.ARCHIVE in message
        assert "FASTNN_DATA" in message and "'path'" in message
    with pytest.raises(TypeError, match="'path'"):
        cifar10.load_data(3)


def test_cifar10_damaged_archives_are_value_errors(tmp_path, no_data_dir):
    files, _ = small_cifar()
    good = write_archive(str(tmp_path), files, "good.tar.gz")
    with open(good, "rb") as f:
        data = f.read()
    cases = {
        "truncated.tar.gz": data[:len(data) // 2],
        "garbage.tar.gz": b"this is not an archive" * 10,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=cifar10.URL.replace(".", r"\.")):
            cifar10.load_data(str(path))
    # a batch missing, a batch of the wrong shape, labels out of range, not a dict
    broken = {
        "missing": {k: v for k, v in files.items() if k != "data_batch_3"},
        "shape": dict(files, data_batch_2=py2_pickle(
            {"labels": [0, 1], "data": np.zeros((2, 100), np.uint8)})),
        "labels": dict(files, test_batch=batch_bytes(
            np.zeros((2, 32, 32, 3), np.uint8), [0, 10])),
        "count": dict(files, test_batch=py2_pickle(
            {"labels": [0], "data": np.zeros((2, 3072), np.uint8)})),
        "list": dict(files, data_batch_1=py2_pickle([1, 2, 3])),
        "cut": dict(files, data_batch_4=files["data_batch_4"][:100]),
    }
    for name, content in broken.items():
        os.makedirs(tmp_path / name)
        folder = write_folder(str(tmp_path / name), content)
        with pytest.raises(ValueError, match=cifar10.URL.replace(".", r"\.")):
            cifar10.load_data(folder)
        archive = write_archive(str(tmp_path / name), content)
        with pytest.raises(ValueError, match=cifar10.URL.replace(".", r"\.")):
            cifar10.load_data(archive)


class Hostile:
    """Unpickling this would run a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cifar10_refuses_pickles_that_would_run_code(tmp_path, no_data_dir):
    files, _ = small_cifar()
    marker = tmp_path / "pwned"
    payloads = [
        pickle.dumps({b"data": Hostile(f"touch {marker}"), b"labels": []}, protocol=2),
        pickle.dumps(Hostile(f"touch {marker}"), protocol=4),
        # a global that names a module that is not even importable
        b"\x80\x02cno_such_module\nfunction\nq\x00)\x81q\x01.",
        # builtins.eval with a string, as Python 2 wrote it
        b"c__builtin__\neval\n(S'__import__(\"os\").system(\"touch " + str(marker).encode()
        + b"\")'\ntR.",
    ]
    for i, payload in enumerate(payloads):
        folder = write_folder(str(tmp_path / f"case{i}"), dict(files, data_batch_2=payload))
        with pytest.raises(ValueError, match="refused") as e:
            cifar10.load_data(folder)
        assert "data_batch_2" in str(e.value)
        assert not marker.exists(), f"payload {i} ran"


def py3_batches(seed=0, per_batch=6, n_test=4):
    """{file name: bytes} of a small CIFAR-10 set re-saved by Python 3's pickle
    (protocol 2: byte strings become _codecs.encode(text, "latin1")), and its
    arrays."""
    rng = np.random.default_rng(seed)
    files, xs, ys = {}, [], []
    for name in cifar10.TRAIN_BATCHES + (cifar10.TEST_BATCH,):
        n = n_test if name == cifar10.TEST_BATCH else per_batch
        x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, n)
        data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(n, -1))
        files[name] = pickle.dumps({b"batch_label": b"re-saved", b"labels": [int(v) for v in y],
                                    b"data": data}, protocol=2)
        xs.append(x)
        ys.append(y)
    return files, ((np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5]))


def test_cifar10_reads_python3_pickles(tmp_path, no_data_dir):
    files, arrays = py3_batches()
    assert b"_codecs" in files["test_batch"]  # what this test is about
    assert_loaded(cifar10.load_data(write_folder(str(tmp_path), files)), arrays)
    assert_loaded(cifar10.load_data(write_archive(str(tmp_path), files)), arrays)


def test_cifar10_allows_only_the_latin1_codec(tmp_path, no_data_dir):
    files, _ = py3_batches()
    marker = tmp_path / "pwned"
    payloads = [
        # another codec through the allowed global
        b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q"
        b"\x02\x86q\x03Rq\x04.",
        # a bytes argument where text belongs
        b"\x80\x03c_codecs\nencode\nq\x00C\x03abcq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03"
        b"Rq\x04.",
        # another function of the same module
        b"\x80\x02c_codecs\nlookup\nq\x00X\x05\x00\x00\x00utf-8q\x01\x85q\x02Rq\x03.",
        # a Python 3 pickle that would run a command
        pickle.dumps({b"data": Hostile(f"touch {marker}")}, protocol=2),
        # BUILD on the allowed global: setting its attributes (say, its defaults)
        b"\x80\x02c_codecs\nencode\nq\x00N}q\x01X\x0c\x00\x00\x00__defaults__q\x02"
        b"X\x01\x00\x00\x00xq\x03\x85q\x04s\x86q\x05b.",
    ]
    for i, payload in enumerate(payloads):
        folder = write_folder(str(tmp_path / f"case{i}"), dict(files, test_batch=payload))
        with pytest.raises(ValueError, match="refused"):
            cifar10.load_data(folder)
        assert not marker.exists()


@pytest.mark.parametrize("layout", ["folder", "archive", "keras_archive", "keras_extracted"])
def test_cifar10_finds_keras_cache_folder(tmp_path, monkeypatch, layout):
    """With no path and nothing in $FASTNN_DATA, load_data() reads ~/.keras/datasets
    (HOME pointed at a temporary folder), as Keras leaves it."""
    files, arrays = py3_batches(seed=2)
    home = tmp_path / "home"
    datasets = home / ".keras" / "datasets"
    datasets.mkdir(parents=True)
    if layout == "folder":
        write_folder(str(datasets), files)
    elif layout == "keras_extracted":
        write_folder(str(datasets / f"{cifar10.FOLDER}_extracted"), files)
    else:
        write_archive(str(datasets), files,
                      cifar10.ARCHIVE if layout == "archive" else f"{cifar10.FOLDER}.tar.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASTNN_DATA", str(empty))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    assert keras_dir() == str(datasets)
    assert_loaded(cifar10.load_data(), arrays)
    # $KERAS_HOME moves it; $FASTNN_DATA comes first
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="KERAS_HOME"):
        cifar10.load_data()
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    assert_loaded(cifar10.load_data(), arrays)
    other, other_arrays = py3_batches(seed=3)
    write_folder(str(empty), other)
    assert_loaded(cifar10.load_data(), other_arrays)


def mnist_arrays(seed=0, n_train=12, n_test=5):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}


def assert_mnist(result, arrays):
    (x_train, y_train), (x_test, y_test) = result
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"),
                     (y_test, "y_test")):
        np.testing.assert_array_equal(got, arrays[key], err_msg=key)
        assert got.shape == arrays[key].shape
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64


def test_mnist_found_in_every_place(tmp_path, monkeypatch, no_data_dir):
    arrays = mnist_arrays()
    home = tmp_path / "home"
    (home / ".keras" / "datasets").mkdir(parents=True)
    np.savez(home / ".keras" / "datasets" / mnist.FILE, **arrays)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME")
    assert_mnist(mnist.load_data(), arrays)  # Keras's cache
    assert_mnist(mnist.load_data(home / ".keras" / "datasets"), arrays)  # a folder
    mine = mnist_arrays(seed=1)
    np.savez(no_data_dir / mnist.FILE, **mine)
    assert_mnist(mnist.load_data(), mine)  # $FASTNN_DATA first
    assert_mnist(mnist.load_data(str(no_data_dir / mnist.FILE)), mine)  # the file


def test_mnist_missing_or_bad_files(tmp_path, no_data_dir):
    with pytest.raises(FileNotFoundError) as e:
        mnist.load_data()
    for part in (mnist.FILE, mnist.URL, "FASTNN_DATA", "KERAS_HOME", "'path'"):
        assert part in str(e.value)
    with pytest.raises(TypeError, match="'path'"):
        mnist.load_data(1.5)
    arrays = mnist_arrays()
    bad = {
        "pickled": dict(arrays, y_test=np.array([object()] * 5)),
        "missing": {k: v for k, v in arrays.items() if k != "x_test"},
        "dtype": dict(arrays, x_train=arrays["x_train"].astype(np.float32)),
        "count": dict(arrays, y_train=arrays["y_train"][:3]),
        "range": dict(arrays, y_test=np.full(5, 10, np.uint8)),
    }
    for name, content in bad.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **content)
        with pytest.raises(ValueError, match="mnist.load_data"):
            mnist.load_data(path)
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file" * 20)
    with pytest.raises(ValueError, match="damaged"):
        mnist.load_data(tmp_path / "garbage.npz")


# ================================================================ shapes

def test_shapes_load_data_format_balance_and_determinism(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    (x, y), (xt, yt) = shapes.load_data(n_train=300, n_test=70)
    assert x.shape == (300, 32, 32, 3) and x.dtype == np.uint8
    assert xt.shape == (70, 32, 32, 3) and xt.dtype == np.uint8
    assert y.shape == (300, 1) and y.dtype == np.int64 and yt.shape == (70, 1)
    assert np.bincount(y.ravel(), minlength=10).tolist() == [30] * 10
    assert np.bincount(yt.ravel(), minlength=10).tolist() == [7] * 10
    # the set uses the whole range, and no test image is a training image
    assert x.min() == 0 and x.max() == 255
    assert not (set(map(bytes, xt)) & set(map(bytes, x)))
    # again, from the cache; and drawn afresh without it: the same
    cached = [f for f in os.listdir(tmp_path) if f.startswith("shapes-")]
    assert len(cached) == 1
    (x2, y2), (xt2, yt2) = shapes.load_data(n_train=300, n_test=70)
    os.remove(tmp_path / cached[0])
    (x3, y3), (xt3, yt3) = shapes.load_data(n_train=300, n_test=70)
    for a, b, c in ((x, x2, x3), (y, y2, y3), (xt, xt2, xt3), (yt, yt2, yt3)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    (x4, _), _ = shapes.load_data(n_train=300, n_test=70, seed=1)
    assert not np.array_equal(x, x4)


def test_shapes_defaults_are_cifar_sized():
    import inspect
    params = inspect.signature(shapes.load_data).parameters
    assert params["n_train"].default == 50000 and params["n_test"].default == 10000


def test_shapes_do_not_depend_on_the_thread_count(monkeypatch):
    many = shapes.generate(1200, 5)
    monkeypatch.setattr(shapes.os, "cpu_count", lambda: 1)
    one = shapes.generate(1200, 5)
    np.testing.assert_array_equal(many[0], one[0])
    np.testing.assert_array_equal(many[1], one[1])


def test_shapes_damaged_or_foreign_caches_are_drawn_again(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    want = shapes.load_data(n_train=40, n_test=20)
    (name,) = os.listdir(tmp_path)
    path = tmp_path / name
    good = path.read_bytes()
    assert len(good) > 1000
    wrong_labels = io.BytesIO()
    np.savez(wrong_labels, x_train=want[0][0], y_train=want[0][1] + 10, x_test=want[1][0],
             y_test=want[1][1])
    for content in (good[:len(good) // 2], b"junk", good[:-300] + bytes(300),
                    wrong_labels.getvalue()):
        path.write_bytes(content)
        got = shapes.load_data(n_train=40, n_test=20)
        for a, b in zip((want[0] + want[1]), (got[0] + got[1])):
            np.testing.assert_array_equal(a, b)
        with np.load(path) as f:  # written again
            np.testing.assert_array_equal(f["x_train"], want[0][0])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_shapes_without_a_writable_cache_still_load(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("FASTNN_DATA", str(blocker / "below"))
    (x, y), _ = shapes.load_data(n_train=20, n_test=10)
    assert x.shape == (20, 32, 32, 3)


def test_shapes_bad_arguments():
    for kwargs in ({"n_train": -1}, {"n_test": 2.5}, {"seed": -3}, {"n_train": True}):
        with pytest.raises(ValueError, match=f"'{next(iter(kwargs))}'"):
            shapes.load_data(**kwargs)


def test_data_dir_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_dir() == os.path.join(str(tmp_path), ".cache", "fastnn")
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "d"))
    assert data_dir() == str(tmp_path / "d")


# Each class's region on a fine grid against its area worked out by hand
# (s: the size parameter).
AREAS = {
    "circle": np.pi * 0.9 ** 2,
    "square": 1.5 ** 2,
    "triangle": 3 * np.sqrt(3) / 4,            # equilateral, circumradius s
    "plus": 2 * (2 * 0.56) - 0.56 ** 2,        # two 2s x 0.56s bars, crossing
    "ring": np.pi * (0.97 ** 2 - 0.53 ** 2),
    "horizontal_bar": 2 * 0.6,
    "vertical_bar": 2 * 0.6,
    "diamond": 2 * 0.65,                       # half-diagonals 0.65s and s
    "ellipse": np.pi * 0.55,
}


@pytest.mark.parametrize("name", shapes.CLASS_NAMES)
def test_shape_outlines_have_their_areas(name):
    s = 10.0
    step = 0.02
    g = np.arange(-2 * s, 2 * s, step) + step / 2
    v, u = np.meshgrid(g, g, indexing="ij")
    sdf = shapes._SDFS[shapes.CLASS_NAMES.index(name)]
    d = sdf(u.reshape(1, -1), v.reshape(1, -1), np.array([[s]])).reshape(u.shape)
    inside = d < 0
    if name == "star":
        # five points of radius s: the tip straight up is in, just past it is out
        assert d[np.searchsorted(g, -0.97 * s), len(g) // 2] < 0
        assert d[np.searchsorted(g, -1.03 * s), len(g) // 2] > 0
        assert 0.25 * np.pi * s * s < inside.sum() * step * step < 0.6 * np.pi * s * s
        return
    np.testing.assert_allclose(inside.sum() * step * step, AREAS[name] * s * s, rtol=0.01)
    assert np.all(d[np.abs(u) > 1.6 * s] > 0)
    if name in ("horizontal_bar", "ellipse"):
        assert np.ptp(u[inside]) > 1.5 * np.ptp(v[inside])  # wide
    if name in ("vertical_bar", "diamond"):
        assert np.ptp(v[inside]) > 1.5 * np.ptp(u[inside])  # tall

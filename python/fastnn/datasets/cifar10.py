"""CIFAR-10 from the official Python archive, read from disk (never downloaded).

Put ``cifar-10-python.tar.gz`` (or the folder ``cifar-10-batches-py`` it
holds) in ``$FASTNN_DATA`` (default ``~/.cache/fastnn``) or in Keras's cache
folder (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``, where Keras
leaves it), or pass its place as ``path``. Get it from
https://www.cs.toronto.edu/~kriz/cifar.html.

The batches are pickles. They are read by an unpickler that builds only
lists, dicts, strings, numbers and NumPy arrays, and refuses any other
object, so a hostile file cannot run code. Python 3's pickle (protocol 2)
stores byte strings as ``_codecs.encode(text, "latin1")``: that call, with
that codec only, is allowed too.
"""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from . import _cache

__all__ = ["CLASS_NAMES", "load_data"]

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_PIXELS = 3 * 32 * 32


def load_data(path=None):
    """((x_train, y_train), (x_test, y_test)) as Keras's ``cifar10.load_data()``:
    x uint8 (n, 32, 32, 3) NHWC, y int64 (n, 1) (Keras: uint8), 50,000 training
    and 10,000 test images in the official archive.

    path: the archive ``cifar-10-python.tar.gz``, its extracted folder
    ``cifar-10-batches-py``, or a folder holding either; default: the first
    found in ``$FASTNN_DATA`` (else ``~/.cache/fastnn``), then in Keras's
    cache ``$KERAS_HOME/datasets`` (else ``~/.keras/datasets``).
    FileNotFoundError when none is there, ValueError when the file is damaged
    or not CIFAR-10."""
    source = _find(path)
    if os.path.isdir(source):
        def read(name):
            member = os.path.join(source, name)
            if not os.path.isfile(member):
                raise ValueError(f"cifar10.load_data: {source} lacks the file {name}; "
                                 f"{_HOW_TO_GET}")
            with open(member, "rb") as f:
                return f.read()
        return _load(read, source)
    wanted = {f"{FOLDER}/{name}": name for name in TRAIN_BATCHES + (TEST_BATCH,)}
    found = {}
    try:
        # one pass in stream mode: seeking back in a .gz decompresses it again
        with tarfile.open(source, "r|*") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    found[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:  # BadGzipFile: OSError
        raise ValueError(f"cifar10.load_data: {source} is not a readable CIFAR-10 archive "
                         f"({type(e).__name__}: {e}); {_HOW_TO_GET}") from None

    def read(name):
        if name not in found:
            raise ValueError(f"cifar10.load_data: the archive {source} lacks the file "
                             f"{FOLDER}/{name}; {_HOW_TO_GET}")
        return found.pop(name)  # let each batch's bytes go once read
    return _load(read, source)


# where Keras 3 leaves the archive and its extracted folder, besides the official names
_NAMES = (FOLDER, f"{FOLDER}_extracted/{FOLDER}", ARCHIVE, f"{FOLDER}.tar.gz")
_HOW_TO_GET = (f"download '{ARCHIVE}' (the CIFAR-10 python version) from {URL} and put it, "
               f"or the '{FOLDER}' folder it holds, in $FASTNN_DATA (default ~/.cache/fastnn) "
               f"or in Keras's cache folder ($KERAS_HOME/datasets, default ~/.keras/datasets), "
               f"or pass its place as 'path'")


def _find(path):
    """The archive or folder named by path, or, for path None, the first one
    found in $FASTNN_DATA (or ~/.cache/fastnn), then in Keras's cache."""
    places = _cache.places(path, "cifar10.load_data")
    if isinstance(places, str):
        return places  # the file itself
    for where, _ in places:
        if os.path.isfile(os.path.join(where, TEST_BATCH)):
            return where  # the extracted folder itself
        for name in _NAMES:
            candidate = os.path.join(where, name)
            if os.path.exists(candidate):
                return candidate
    raise FileNotFoundError(f"cifar10.load_data: no CIFAR-10 data in {_cache.describe(places)}: "
                            f"looked for '{ARCHIVE}' and '{FOLDER}/'; {_HOW_TO_GET}")


def _load(read, source):
    x_train, y_train = zip(*(_batch(read(name), name, source) for name in TRAIN_BATCHES))
    x_test, y_test = _batch(read(TEST_BATCH), TEST_BATCH, source)
    return ((np.concatenate(x_train), np.concatenate(y_train)), (x_test, y_test))


def _batch(data, name, source):
    """(x (n, 32, 32, 3) uint8, y (n, 1) int64) of one pickled batch."""
    def bad(why):
        return ValueError(f"cifar10.load_data: {name} in {source} is damaged or not a CIFAR-10 "
                          f"batch ({why}); {_HOW_TO_GET}")
    try:
        d = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as e:
        raise ValueError(f"cifar10.load_data: refused to read {name} in {source}: {e}; a "
                         f"CIFAR-10 batch holds only lists, dicts, strings, numbers and NumPy "
                         f"arrays") from None
    except Exception as e:  # any malformed pickle: UnpicklingError, EOFError, ValueError...
        raise bad(f"{type(e).__name__}: {e}") from None
    if not isinstance(d, dict):
        raise bad(f"a {type(d).__name__}, not a dict")
    d = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    x, y = d.get("data"), d.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 \
            or x.shape[1] != _PIXELS:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise bad(f"'data' must be a uint8 array of shape (n, {_PIXELS}), got {got}")
    try:
        y = np.asarray(y, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise bad("'labels' must be a list of ints") from None
    if y.shape != (x.shape[0],):
        raise bad(f"{x.shape[0]} images but 'labels' has shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= len(CLASS_NAMES)):
        raise bad(f"labels must be in [0, {len(CLASS_NAMES)}), got [{y.min()}, {y.max()}]")
    # rows hold the red plane, then green, then blue, each 32x32 row-major
    images = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), y.reshape(-1, 1)


class _Refused(Exception):
    pass


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # NumPy's array rebuilder, any version
# (module, name) -> the object a batch may ask for. NumPy 1 pickles name
# numpy.core, NumPy 2 numpy._core; files written by Python 2 say __builtin__.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _Latin1Encode:
    """_codecs.encode as Python 3's protocol 2 uses it for byte strings. An
    object without state: a file cannot change it (pickle's BUILD on it is
    refused), so what it allows stays (str, 'latin1') alone."""
    __slots__ = ()

    def __call__(self, text, encoding):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused(f"it asks for _codecs.encode with {type(text).__name__} and "
                           f"{encoding!r}; only (str, 'latin1') is allowed")
        return text.encode("latin-1")

    def __setstate__(self, state):
        raise _Refused("it sets attributes of _codecs.encode")


_ALLOWED[("_codecs", "encode")] = _Latin1Encode()


class _SafeUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR-10 batches hold; any other global (a
    function, a class) is refused before it is looked up, so nothing of the
    file's choosing is called."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"it asks for {module}.{name}") from None

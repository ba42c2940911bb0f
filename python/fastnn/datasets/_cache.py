"""Where datasets live, and a cache of arrays that a crash or a damaged file
cannot turn into wrong data."""
import os
import uuid
import zipfile

import numpy as np


def data_dir():
    """``$FASTNN_DATA`` when set, else ``~/.cache/fastnn`` (not created here)."""
    env = os.environ.get("FASTNN_DATA")
    return os.path.abspath(os.path.expanduser(env if env else os.path.join("~", ".cache", "fastnn")))


def keras_dir():
    """Keras's download folder: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    env = os.environ.get("KERAS_HOME")
    return os.path.join(os.path.abspath(os.path.expanduser(env if env else os.path.join(
        "~", ".keras"))), "datasets")


def search_dirs():
    """[(folder, how to name it in a message)] where ``load_data()`` looks when
    given no path: data_dir(), then Keras's folder."""
    told = "$FASTNN_DATA" if os.environ.get("FASTNN_DATA") else "the fastnn data folder"
    keras = "$KERAS_HOME/datasets" if os.environ.get("KERAS_HOME") else "Keras's cache"
    return [(data_dir(), told), (keras_dir(), keras)]


def places(path, fn):
    """Where load_data(path) looks: the file at path (a str), or the folders
    [(folder, its name in a message)]: path's, or search_dirs() for None."""
    if path is None:
        return search_dirs()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{fn}: argument 'path' must be a str or os.PathLike, "
                        f"got {type(path).__name__}")
    where = os.path.abspath(os.path.expanduser(os.fspath(path)))
    return where if os.path.isfile(where) else [(where, where)]


def describe(places):
    """'A (/a) and B (/b)' for a message, from search_dirs()-style pairs."""
    return " and ".join(where if told == where else f"{told} ({where})" for where, told in places)


def load_or_create(name, shapes, create, label_range):
    """The arrays of cache file `name` in data_dir(), when it holds exactly
    `shapes` (uint8 images and int64 labels in [0, label_range), keys named
    'x_*' and 'y_*'); otherwise `create()` -> dict of arrays, saved there
    (written to a temporary file, then renamed, so no reader ever sees half a
    file; when the folder cannot be written the arrays are returned unsaved)."""
    path = os.path.join(data_dir(), name)
    arrays = _read(path, shapes, label_range)
    if arrays is not None:
        return arrays
    arrays = create()
    _write(path, arrays)
    return arrays


def _read(path, shapes, label_range):
    try:
        with np.load(path, allow_pickle=False) as f:
            if sorted(f.files) != sorted(shapes):
                return None
            arrays = {k: f[k] for k in shapes}  # reading checks each member's CRC
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError):
        return None
    for k, shape in shapes.items():
        a = arrays[k]
        want = np.uint8 if k.startswith("x") else np.int64
        if a.shape != shape or a.dtype != want:
            return None
        if k.startswith("y") and a.size and (a.min() < 0 or a.max() >= label_range):
            return None
    return arrays


def _write(path, arrays):
    folder, name = os.path.split(path)
    # a fresh name in the same folder (the rename must not cross file
    # systems), created with the user's umask, unlike tempfile's 0600
    tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}-{name}")
    try:
        os.makedirs(folder, exist_ok=True)
        f = open(tmp, "xb")
    except OSError:
        return
    try:
        with f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a full disk, say: the arrays are still returned
    finally:
        if os.path.exists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass

"""The model file: a NumPy ``.npz`` archive written with
``allow_pickle=False`` holding one JSON document (layer configs, compile
arguments, optimizer hyperparameters and scalar state) and the arrays.
Written to a temporary file in the same folder and renamed, so a crash never
leaves a torn file; read as arrays and JSON only, layers rebuilt from
fastnn's own classes, so a hostile file can fail to load but cannot run
code."""
import json
import numbers
import os
import tempfile
import zipfile

import numpy as np

from .. import distributed as _distributed
from .. import nn, regularizers
from ..tensor import Tensor

FORMAT = "fastnn.model"
FORMAT_VERSION = 1


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
    if not _distributed.writes_files():  # under MPI, rank 0 alone writes
        return path
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
    if not isinstance(document, dict) or not str(document.get("format", "")).startswith(FORMAT):
        raise ValueError(f"{path}: not a fastnn model file")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: model file version {document.get('version')!r}; this fastnn "
                         f"reads version {FORMAT_VERSION}")
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
    cls = getattr(regularizers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, regularizers.Regularizer)):
        raise ValueError(f"{path}: unknown object class {name!r} in a layer config")
    try:
        return cls(**entry.get("config", {}))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: cannot rebuild {name}: {e}") from None

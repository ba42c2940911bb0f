"""``load_model``: a Sequential rebuilt from its file."""
from .. import optim as _optim
from .file_format import _layer_from_config, _load_weights, _read_npz, _unflatten
from .sequential import Sequential


def load_model(path):
    """Rebuilds a model saved by ``model.save(path)``: layers, weights, and,
    when it was compiled, the loss, metrics and optimizer with its state, so
    training can resume where it stopped. Raises ValueError for a file that
    is not a fastnn model or is damaged; it never runs code from the file."""
    document, arrays = _read_npz(path)
    spec = document.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ValueError(f"{path}: damaged model file (no layer list)")
    layers = [_layer_from_config(entry, path) for entry in spec["layers"]]
    model = Sequential(layers, name=spec.get("name"))
    shape = document.get("input_shape")
    if shape is not None:
        if not isinstance(shape, list) or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"{path}: damaged model file (input_shape {shape!r})")
        model.build((1,) + tuple(shape))
        _load_weights(model, arrays, path)
    model._shuffle_seed = document.get("shuffle_seed")
    compiled = document.get("compile")
    if isinstance(compiled, dict):
        opt_doc = compiled.get("optimizer") or {"name": "adam"}
        optimizer = opt_doc.get("name", "adam")
        if "class_name" in opt_doc:
            cls = getattr(_optim, str(opt_doc["class_name"]), None)
            if not (isinstance(cls, type) and issubclass(cls, _optim.Optimizer)):
                raise ValueError(f"{path}: unknown optimizer {opt_doc['class_name']!r}")
            defaults = opt_doc.get("defaults", {})
            if not isinstance(defaults, dict):
                raise ValueError(f"{path}: damaged model file (optimizer defaults)")
            defaults = {k: tuple(v) if isinstance(v, list) else v for k, v in defaults.items()}
            try:
                optimizer = cls(model.parameters(), **defaults)
                optimizer.load_state_dict(_unflatten(opt_doc.get("state"), arrays, path))
            except (TypeError, KeyError) as e:
                raise ValueError(f"{path}: cannot rebuild the optimizer: {e}") from None
        model.compile(optimizer=optimizer, loss=compiled.get("loss"),
                      metrics=compiled.get("metrics") or [])
    return model

"""Keras's automatic names: a class's name in snake case ("Conv2D" ->
"conv2d", "MaxPooling2D" -> "max_pooling2d"), numbered from the second of
its kind on ("conv2d", "conv2d_1", ...) until ``clear_session()``."""
import collections
import re

_counts = collections.Counter()


def snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique(name, cls_name):
    """``name`` itself when given (it must be a non-empty str), else the next
    automatic name for ``cls_name``."""
    if name is not None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls_name}: argument 'name' must be a non-empty str, got {name!r}")
        return name
    base = snake_case(cls_name)
    n = _counts[base]
    _counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def clear_session():
    """Restarts the automatic numbering of layer and model names, as Keras's
    ``clear_session()`` does."""
    _counts.clear()

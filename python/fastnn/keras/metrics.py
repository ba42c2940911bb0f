"""Keras's metric classes, for ``compile(metrics=[...])`` and on their own
(``update_state(y_true, y_pred)``, ``result()``, ``reset_state()``).

In ``compile`` they become fastnn's metrics of the same meaning, reported
under fastnn's names: every accuracy as ``accuracy`` (following the loss's
label format, as Keras's "accuracy" string does), ``precision``,
``recall``, ``auc``. On their own they compute over all the batches given
since the last reset, exactly (AUC from the ROC curve, not Keras's 200
thresholds).
"""
import numpy as np

from .. import metrics as _metrics
from . import _naming

__all__ = ["AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "Metric", "Precision",
           "Recall", "SparseCategoricalAccuracy", "get"]


class Metric:
    fastnn_name = None  # what compile() reports it as

    def __init__(self, name=None, dtype=None):
        self.name = name or _naming.snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self):
        self._true, self._pred = [], []

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}.update_state: 'sample_weight' is not "
                             f"supported")
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        if len(y_true) != len(y_pred):
            raise ValueError(f"{type(self).__name__}.update_state: y_true and y_pred must have "
                             f"the same number of samples, got {len(y_true)} and {len(y_pred)}")
        # rows of one sample each, so batches of (n,) and (n, 1) labels mix
        self._true.append(y_true.reshape(len(y_true), -1))
        self._pred.append(y_pred.reshape(len(y_pred), -1))

    def result(self):
        if not self._true:
            return 0.0
        return float(self._compute(np.concatenate(self._true), np.concatenate(self._pred)))

    def __call__(self, y_true, y_pred, sample_weight=None):
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


class Accuracy(Metric):
    """How often y_pred equals y_true."""
    fastnn_name = "accuracy"

    def _compute(self, t, p):
        return np.mean(t.reshape(p.shape) == p)


class BinaryAccuracy(Metric):
    """How often (y_pred > threshold) equals y_true."""
    fastnn_name = "accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def _compute(self, t, p):
        return np.mean(t.reshape(p.shape) == (p > self.threshold))


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets)."""
    fastnn_name = "accuracy"

    def _compute(self, t, p):
        return np.mean(t.argmax(axis=-1) == p.argmax(axis=-1))


class SparseCategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals the integer label y_true."""
    fastnn_name = "accuracy"

    def _compute(self, t, p):
        return np.mean(t.reshape(len(t)) == p.argmax(axis=-1))


class _Thresholded(Metric):
    def __init__(self, thresholds=None, name=None, dtype=None):
        self.thresholds = 0.5 if thresholds is None else float(thresholds)
        super().__init__(name, dtype)

    def _compute(self, t, p):
        return self._fn(t.reshape(-1).astype(bool), p.reshape(-1) > self.thresholds,
                        zero_division=0)


class Precision(_Thresholded):
    """true positives / predicted positives, every element a binary decision."""
    fastnn_name = "precision"
    _fn = staticmethod(_metrics.precision_score)


class Recall(_Thresholded):
    """true positives / actual positives, every element a binary decision."""
    fastnn_name = "recall"
    _fn = staticmethod(_metrics.recall_score)


class AUC(Metric):
    """The area under the ROC curve of binary targets and scores (all elements)."""
    fastnn_name = "auc"

    def _compute(self, t, p):
        return _metrics.roc_auc_score(t.reshape(-1), p.reshape(-1))


_BY_NAME = {"accuracy": "accuracy", "acc": "accuracy", "sparse_categorical_accuracy": "accuracy",
            "categorical_accuracy": "accuracy", "binary_accuracy": "accuracy",
            "precision": "precision", "recall": "recall", "auc": "auc", "f1": "f1"}


def get(identifier):
    """The fastnn metric name that ``compile`` uses for a Keras metric name,
    a Metric class or a Metric object."""
    if isinstance(identifier, str):
        name = _BY_NAME.get(identifier.lower())
        if name is None:
            raise ValueError(f"metrics.get: unknown metric {identifier!r}; valid names are "
                             f"{sorted(_BY_NAME)}")
        return name
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        identifier = identifier()
    if isinstance(identifier, Metric) and identifier.fastnn_name:
        return identifier.fastnn_name
    raise TypeError(f"metrics.get: argument must be a metric name or a Metric of this module, "
                    f"got {identifier!r}")

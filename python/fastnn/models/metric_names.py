"""The metrics ``compile(metrics=[...])`` takes by name, and how the label
format of the loss decides what "accuracy" means (as in Keras)."""
import numpy as np

from .. import metrics as M


def _metric(name, label_kind):
    """(name in logs, fn(outputs ndarray, targets ndarray) -> value) for a
    metric name; accuracy follows the loss's label format as in Keras."""
    key = name.lower()
    if key in ("accuracy", "acc"):
        return "accuracy", _ACCURACY[label_kind]

    def classes(out, y):
        pred = _predicted_classes(out, label_kind)
        return _true_classes(y, label_kind), pred

    averages = {"precision": M.precision_score, "recall": M.recall_score, "f1": M.f1_score,
                "f1_score": M.f1_score}
    if key in averages:
        fn = averages[key]
        average = "binary" if label_kind == "binary" else "macro"
        return ("f1" if key == "f1_score" else key), \
            lambda out, y: float(fn(*classes(out, y), average=average, zero_division=0))
    if key in ("auc", "roc_auc"):
        def auc(out, y):
            t = _true_classes(y, label_kind)
            scores = out.reshape(len(out), -1)
            if label_kind == "binary" or scores.shape[1] == 1:
                return float(M.roc_auc_score(t, scores[:, 0]))
            return float(M.roc_auc_score(t, scores, multi_class="ovr", average="macro",
                                         labels=np.arange(scores.shape[1])))
        return "auc", auc
    raise ValueError(f"compile: unknown metric {name!r}; valid names are 'accuracy', "
                     f"'precision', 'recall', 'f1', 'auc'")


def _predicted_classes(out, kind):
    out = out.reshape(len(out), -1)
    if kind == "binary" or out.shape[1] == 1:
        return (out[:, 0] > 0.5).astype(np.int64)
    return out.argmax(axis=1)


def _true_classes(y, kind):
    y = np.asarray(y)
    if kind == "onehot":
        return y.reshape(len(y), -1).argmax(axis=1)
    return y.reshape(len(y)).astype(np.int64)


_ACCURACY = {
    "sparse": lambda out, y: float(np.mean(_predicted_classes(out, "sparse")
                                           == _true_classes(y, "sparse"))),
    "onehot": lambda out, y: float(np.mean(_predicted_classes(out, "onehot")
                                           == _true_classes(y, "onehot"))),
    "binary": lambda out, y: float(np.mean(_predicted_classes(out, "binary")
                                           == _true_classes(y, "binary"))),
    "values": lambda out, y: float(np.mean(np.round(out.reshape(y.shape)) == y)),
    None: lambda out, y: float(np.mean(out.reshape(len(out), -1).argmax(axis=1)
                                       == np.asarray(y).reshape(len(y)))),
}

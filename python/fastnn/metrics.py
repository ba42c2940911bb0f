"""Classification metrics with scikit-learn's definitions and argument names,
written with NumPy (scikit-learn is not needed).

Labels may be integers, bools, integral floats or strings, given as lists,
NumPy arrays or tensors, 1-D (or a single column). ``y_score`` holds
scores or probabilities: (n_samples,) for a binary task, (n_samples,
n_classes) for several classes.

- ``accuracy_score``, ``confusion_matrix``;
- ``precision_score``, ``recall_score``, ``f1_score`` and
  ``precision_recall_fscore_support`` with ``average`` "binary" (the
  default: the ``pos_label`` class of a two-class task), "micro" (from the
  summed counts), "macro" (the mean over labels), "weighted" (the mean
  weighted by each label's support) or None (one value per label), and
  ``zero_division`` ("warn": 0 with an UndefinedMetricWarning, 0, 1 or
  nan) for a ratio whose denominator is 0, such as the precision of a class
  never predicted;
- ``roc_curve`` (ties in the scores share one threshold) and
  ``roc_auc_score`` (binary; several classes one-vs-rest with
  ``multi_class="ovr"`` and average "macro", "weighted" or "micro");
- ``classification_report``, as text or a dict.

Bad input (lengths that differ, labels out of place, an unknown average,
continuous labels, no sample) raises ValueError naming the argument.
"""
import math
import numbers
import warnings

import numpy as np

from .tensor import Tensor

__all__ = ["UndefinedMetricWarning", "accuracy_score", "classification_report",
           "confusion_matrix", "f1_score", "precision_recall_fscore_support", "precision_score",
           "recall_score", "roc_auc_score", "roc_curve"]


class UndefinedMetricWarning(UserWarning):
    """A metric is ill-defined (a zero denominator) and was set to zero_division."""


# ---------------------------------------------------------------- inputs
def _array(y, name, fn):
    if isinstance(y, Tensor):
        y = y.numpy()
    try:
        return np.asarray(y)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn}: argument '{name}' must be array-like ({e})") from None


def _labels_1d(y, name, fn):
    """y as a 1-D array of class labels: a column is flattened; continuous
    values (non-integral floats) are a ValueError."""
    arr = _array(y, name, fn)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: argument '{name}' must be 1-D (n_samples,), got shape "
                         f"{arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{fn}: argument '{name}' is empty")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{fn}: argument '{name}' holds continuous values (not class "
                             "labels); classification metrics need labels")
    elif arr.dtype.kind == "O":
        kinds = {"str" if isinstance(v, str) else "num" if isinstance(v, numbers.Integral)
                 else "other" for v in arr}
        if len(kinds) != 1 or "other" in kinds:
            raise ValueError(f"{fn}: argument '{name}' must hold labels of one kind (all ints or "
                             "all strings)")
        arr = arr.astype(str) if kinds == {"str"} else arr.astype(np.int64)
    elif arr.dtype.kind not in "biuUS":
        raise ValueError(f"{fn}: argument '{name}' must hold class labels, got dtype {arr.dtype}")
    return arr


def _is_text(arr):
    return arr.dtype.kind in "US"


def _targets(y_true, y_pred, fn):
    """(kind, y_true, y_pred): 1-D label arrays of one length; kind is
    "binary" (at most two distinct labels in both) or "multiclass"."""
    yt = _labels_1d(y_true, "y_true", fn)
    yp = _labels_1d(y_pred, "y_pred", fn)
    if len(yt) != len(yp):
        raise ValueError(f"{fn}: y_true and y_pred must have the same length, got {len(yt)} and "
                         f"{len(yp)}")
    if _is_text(yt) != _is_text(yp):
        raise ValueError(f"{fn}: y_true and y_pred mix string and number labels "
                         f"({yt.dtype} and {yp.dtype})")
    kind = "binary" if len(np.union1d(yt, yp)) <= 2 else "multiclass"
    return kind, yt, yp


def _sample_weight(sample_weight, n, fn):
    if sample_weight is None:
        return None
    w = _array(sample_weight, "sample_weight", fn)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: argument 'sample_weight' must hold numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"{fn}: argument 'sample_weight' must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{fn}: argument 'sample_weight' must be finite")
    return w


def _label_list(labels, fn):
    arr = _array(labels, "labels", fn)
    if arr.ndim != 1:
        raise ValueError(f"{fn}: argument 'labels' must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{fn}: argument 'labels' must hold at least one label")
    return arr


def _contains(values, label):
    """Whether label is among values (False for a label of another kind)."""
    try:
        return bool(np.any(values == label))
    except (TypeError, ValueError):
        return False


def _count(mask, w):
    return float(np.sum(w[mask])) if w is not None else int(np.count_nonzero(mask))


# ---------------------------------------------------------------- accuracy and confusion
def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """The fraction of samples whose predicted label is the true one (with
    normalize=False their number, or summed weight)."""
    fn = "accuracy_score"
    _, yt, yp = _targets(y_true, y_pred, fn)
    w = _sample_weight(sample_weight, len(yt), fn)
    correct = yt == yp
    if normalize:
        return float(np.average(correct, weights=w))
    return _count(correct, w)


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """C[i, j]: the samples (or their weight) of true label labels[i] predicted
    as labels[j]. labels default to every label seen, sorted; samples with a
    label outside ``labels`` are left out. normalize: "true" (rows sum to 1),
    "pred" (columns), "all", or None; a row or column of zeros stays 0."""
    fn = "confusion_matrix"
    _, yt, yp = _targets(y_true, y_pred, fn)
    if normalize not in ("true", "pred", "all", None):
        raise ValueError(f"{fn}: argument 'normalize' must be 'true', 'pred', 'all' or None, got "
                         f"{normalize!r}")
    w = _sample_weight(sample_weight, len(yt), fn)
    if labels is None:
        labels = np.union1d(yt, yp)
    else:
        labels = _label_list(labels, fn)
        if not any(_contains(yt, label) for label in labels):
            raise ValueError(f"{fn}: at least one label in 'labels' must occur in y_true")
    n = len(labels)
    index = {label: i for i, label in enumerate(labels.tolist())}
    ti = np.array([index.get(v, n) for v in yt.tolist()], np.int64)
    pi = np.array([index.get(v, n) for v in yp.tolist()], np.int64)
    keep = (ti < n) & (pi < n)
    weights = np.ones(len(yt), np.int64) if w is None else w
    dtype = np.int64 if weights.dtype.kind in "biu" else np.float64
    cm = np.zeros((n, n), dtype)
    np.add.at(cm, (ti[keep], pi[keep]), weights[keep].astype(dtype))
    if normalize is None:
        return cm
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            cm = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            cm = cm / cm.sum(axis=0, keepdims=True)
        else:
            cm = cm / cm.sum()
    return np.nan_to_num(cm)


# ---------------------------------------------------------------- precision, recall, F
_AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _zero_division_value(zero_division, fn):
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
    elif isinstance(zero_division, numbers.Real) and not isinstance(zero_division, bool):
        if math.isnan(zero_division) or zero_division in (0, 1):
            return float(zero_division)
    raise ValueError(f"{fn}: argument 'zero_division' must be 'warn', 0, 1 or nan, got "
                     f"{zero_division!r}")


def _divide(num, den, metric, modifier, zero_division, value, warn):
    """num / den, `value` where den == 0 (with a warning when zero_division
    is "warn")."""
    zero = den == 0
    out = num / np.where(zero, 1, den)
    if zero.any():
        out[zero] = value
        if zero_division == "warn" and warn:
            scope = "due to" if len(out) == 1 else "in labels with"
            warnings.warn(f"{metric} is ill-defined and being set to 0.0 {scope} no {modifier} "
                          "samples. Use `zero_division` parameter to control this behavior.",
                          UndefinedMetricWarning, stacklevel=4)
    return out


def _nan_average(values, weights):
    """The (weighted) mean of the values that are not NaN; NaN when all are;
    unweighted when all their weights are 0."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is None or np.sum(weights[keep]) == 0:
        return float(np.mean(values[keep]))
    return float(np.average(values[keep], weights=weights[keep]))


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                                    average=None, warn_for=("precision", "recall", "f-score"),
                                    sample_weight=None, zero_division="warn"):
    """(precision, recall, F-beta, support), per label (average None: arrays
    over ``labels``, support the true count of each) or averaged (floats,
    support None). precision = tp / (tp + fp), recall = tp / (tp + fn),
    F-beta = (1 + beta^2) tp / ((1 + beta^2) tp + beta^2 fn + fp)."""
    fn = "precision_recall_fscore_support"
    if average not in _AVERAGES:
        raise ValueError(f"{fn}: argument 'average' must be one of {list(_AVERAGES)}, got "
                         f"{average!r}")
    value = _zero_division_value(zero_division, fn)
    beta = float(beta)
    if not beta >= 0:
        raise ValueError(f"{fn}: argument 'beta' must be >= 0, got {beta}")
    kind, yt, yp = _targets(y_true, y_pred, fn)
    w = _sample_weight(sample_weight, len(yt), fn)
    present = np.union1d(yt, yp)
    if average == "binary":
        if kind != "binary":
            raise ValueError(f"{fn}: the targets have {len(present)} classes but "
                             "average='binary'; choose average None, 'micro', 'macro' or "
                             "'weighted'")
        if not _contains(present, pos_label) and len(present) >= 2:
            raise ValueError(f"{fn}: pos_label={pos_label!r} is not a valid label; it must be "
                             f"one of {present.tolist()}")
        labels = np.asarray([pos_label])
    else:
        if pos_label not in (None, 1):
            warnings.warn(f"{fn}: pos_label={pos_label!r} is ignored when average != 'binary' "
                          f"(got {average!r}); use labels=[pos_label] to score one class",
                          UserWarning, stacklevel=3)
        labels = present if labels is None else _label_list(labels, fn)
    tp = np.array([_count((yt == l) & (yp == l), w) for l in labels.tolist()], np.float64)
    pred = np.array([_count(yp == l, w) for l in labels.tolist()], np.float64)
    true = np.array([_count(yt == l, w) for l in labels.tolist()], np.float64)
    if average == "micro":
        tp, pred, true = np.array([tp.sum()]), np.array([pred.sum()]), np.array([true.sum()])
    precision = _divide(tp, pred, "Precision", "predicted", zero_division, value,
                        "precision" in warn_for)
    recall = _divide(tp, true, "Recall", "true", zero_division, value, "recall" in warn_for)
    if math.isinf(beta):
        f = recall
    elif beta == 0:
        f = precision
    else:
        b2 = beta * beta
        f = _divide((1 + b2) * tp, b2 * true + pred, "F-score", "true nor predicted",
                    zero_division, value, "f-score" in warn_for)
    if average is None:
        support = true.astype(np.int64) if w is None else true
        return precision, recall, f, support
    weights = true if average == "weighted" else None
    return (_nan_average(precision, weights), _nan_average(recall, weights),
            _nan_average(f, weights), None)


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                    sample_weight=None, zero_division="warn"):
    """tp / (tp + fp): of the samples predicted as a label, the fraction that
    have it."""
    p, _, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("precision",), sample_weight=sample_weight, zero_division=zero_division)
    return p


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn"):
    """tp / (tp + fn): of the samples that have a label, the fraction predicted so."""
    _, r, _, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, pos_label=pos_label, average=average,
        warn_for=("recall",), sample_weight=sample_weight, zero_division=zero_division)
    return r


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division="warn"):
    """2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall."""
    _, _, f, _ = precision_recall_fscore_support(
        y_true, y_pred, beta=1.0, labels=labels, pos_label=pos_label, average=average,
        warn_for=("f-score",), sample_weight=sample_weight, zero_division=zero_division)
    return f


def classification_report(y_true, y_pred, *, labels=None, target_names=None, sample_weight=None,
                          digits=2, output_dict=False, zero_division="warn"):
    """Precision, recall, F1 and support per label, then the accuracy (or the
    micro average when ``labels`` leave some out) and the macro and weighted
    averages, as scikit-learn's text table (or a dict with output_dict)."""
    fn = "classification_report"
    kind, yt, yp = _targets(y_true, y_pred, fn)
    given = labels is not None
    labels = np.union1d(yt, yp) if labels is None else _label_list(labels, fn)
    present = np.union1d(yt, yp)
    micro_is_accuracy = not given or set(present.tolist()) <= set(labels.tolist())
    if target_names is None:
        target_names = [str(label) for label in labels.tolist()]
    else:
        target_names = [str(name) for name in target_names]
        if len(target_names) != len(labels):
            raise ValueError(f"{fn}: {len(labels)} labels but {len(target_names)} target_names; "
                             "pass labels= to name a subset")
    p, r, f, s = precision_recall_fscore_support(
        yt, yp, labels=labels, average=None, sample_weight=sample_weight,
        zero_division=zero_division)
    headers = ["precision", "recall", "f1-score", "support"]
    rows = list(zip(target_names, p, r, f, s))
    averages = []
    for average in ("micro", "macro", "weighted"):
        heading = "accuracy" if average == "micro" and micro_is_accuracy else average + " avg"
        ap, ar, af, _ = precision_recall_fscore_support(
            yt, yp, labels=labels, average=average, sample_weight=sample_weight,
            zero_division=zero_division)
        averages.append((heading, ap, ar, af, np.sum(s)))
    if output_dict:
        out = {name: dict(zip(headers, [float(a), float(b), float(c), _plain(d)]))
               for name, a, b, c, d in rows}
        for heading, ap, ar, af, total in averages:
            if heading == "accuracy":
                out[heading] = af
            else:
                out[heading] = dict(zip(headers, [ap, ar, af, _plain(total)]))
        return out
    width = max([len(name) for name in target_names] + [len("weighted avg"), digits])
    head = "{:>{width}s} " + " {:>9}" * len(headers)
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = head.format("", *headers, width=width) + "\n\n"
    for name, a, b, c, d in rows:
        text += row.format(name, a, b, c, _plain(d), width=width, digits=digits)
    text += "\n"
    for heading, ap, ar, af, total in averages:
        if heading == "accuracy":
            line = "{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
            text += line.format(heading, "", "", af, _plain(total), width=width, digits=digits)
        else:
            text += row.format(heading, ap, ar, af, _plain(total), width=width, digits=digits)
    return text


def _plain(x):
    """A support count as an int when it is one."""
    x = float(x)
    return int(x) if x.is_integer() else x


# ---------------------------------------------------------------- ROC
def _scores_1d(y_score, n, fn):
    s = _array(y_score, "y_score", fn)
    if s.ndim == 2 and s.shape[1] == 1:
        s = s.reshape(-1)
    if s.ndim != 1:
        raise ValueError(f"{fn}: argument 'y_score' must be 1-D (n_samples,) here, got shape "
                         f"{s.shape}")
    if s.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: argument 'y_score' must hold numbers, got dtype {s.dtype}")
    if len(s) != n:
        raise ValueError(f"{fn}: y_true and y_score must have the same length, got {n} and "
                         f"{len(s)}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{fn}: argument 'y_score' must be finite (no NaN or inf)")
    return s.astype(np.float64)


def _positive(yt, pos_label, fn):
    """y_true == pos_label as a bool array; pos_label None means 1, allowed
    only for labels in {0, 1} or {-1, 1}."""
    classes = np.unique(yt)
    if pos_label is None:
        ok = not _is_text(classes) and any(
            np.array_equal(classes, c) for c in ([0, 1], [-1, 1], [0], [-1], [1]))
        if not ok:
            raise ValueError(f"{fn}: y_true takes the values {classes.tolist()} and pos_label is "
                             "not given: make y_true take values in {0, 1} or {-1, 1}, or pass "
                             "pos_label")
        pos_label = 1
    return yt == pos_label


def _binary_curve(positive, score, w):
    """(false positives, true positives, thresholds) at each distinct score,
    from the highest down; tied scores form one step."""
    order = np.argsort(score, kind="mergesort")[::-1]
    score, positive = score[order], positive[order]
    weight = np.ones(len(score)) if w is None else np.asarray(w, np.float64)[order]
    last = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]
    tps = np.cumsum(positive * weight)[last]
    fps = np.cumsum(~positive * weight)[last]
    return fps, tps, score[last]


def roc_curve(y_true, y_score, *, pos_label=None, sample_weight=None, drop_intermediate=True):
    """(fpr, tpr, thresholds): the false and true positive rates when the
    samples scoring >= thresholds[i] are called positive, for each distinct
    score from the highest down; the first point (0, 0) has threshold inf.
    drop_intermediate leaves out points on a straight segment of the curve.
    Without negatives (or positives) fpr (or tpr) is NaN, with a warning."""
    fn = "roc_curve"
    yt = _labels_1d(y_true, "y_true", fn)
    if len(np.unique(yt)) > 2 and pos_label is None:
        raise ValueError(f"{fn}: y_true has {len(np.unique(yt))} classes; pass pos_label to "
                         "score one of them against the rest")
    score = _scores_1d(y_score, len(yt), fn)
    w = _sample_weight(sample_weight, len(yt), fn)
    fps, tps, thresholds = _binary_curve(_positive(yt, pos_label, fn), score, w)
    if drop_intermediate and len(fps) > 2:
        corner = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    if fps[-1] <= 0:
        warnings.warn("No negative samples in y_true, false positive value should be "
                      "meaningless", UndefinedMetricWarning, stacklevel=2)
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        warnings.warn("No positive samples in y_true, true positive value should be "
                      "meaningless", UndefinedMetricWarning, stacklevel=2)
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return fpr, tpr, thresholds


def _binary_auc(positive, score, w, max_fpr, fn):
    if positive.all() or not positive.any():
        raise ValueError(f"{fn}: only one class is present in y_true; the ROC AUC is not "
                         "defined then")
    fps, tps, _ = _binary_curve(positive, score, w)
    fpr = np.r_[0.0, fps] / fps[-1]
    tpr = np.r_[0.0, tps] / tps[-1]
    if max_fpr is None or max_fpr == 1:
        return float(np.trapezoid(tpr, fpr))
    # the area up to max_fpr (the curve cut there by linear interpolation),
    # rescaled as McClish: 0.5 for a chance ranking, 1 for a perfect one
    stop = int(np.searchsorted(fpr, max_fpr, "right"))
    cut = np.interp(max_fpr, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1])
    area = float(np.trapezoid(np.r_[tpr[:stop], cut], np.r_[fpr[:stop], max_fpr]))
    lowest, highest = 0.5 * max_fpr ** 2, max_fpr
    return 0.5 * (1 + (area - lowest) / (highest - lowest))


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """The area under the ROC curve.

    Binary y_true: y_score (n_samples,) scores the greater label; max_fpr
    in (0, 1) gives the standardised partial area up to that false positive
    rate. Several classes: y_score (n_samples, n_classes) probabilities
    (rows summing to 1) in the order of ``labels`` (default: the sorted
    labels of y_true, which must then all occur); multi_class="ovr" scores
    each class against the rest, averaged by ``average``: "macro", "weighted"
    (by prevalence), "micro" (all pairs pooled) or None (per class). One
    class alone in y_true (or a class of ``labels`` absent from it) is a
    ValueError: the area is not defined."""
    fn = "roc_auc_score"
    yt = _labels_1d(y_true, "y_true", fn)
    score = _array(y_score, "y_score", fn)
    w = _sample_weight(sample_weight, len(yt), fn)
    if max_fpr is not None:
        max_fpr = float(max_fpr)
        if not 0 < max_fpr <= 1:
            raise ValueError(f"{fn}: argument 'max_fpr' must be in (0, 1], got {max_fpr}")
    classes = np.unique(yt)
    if len(classes) <= 2 and not (score.ndim == 2 and score.shape[1] > 2):
        # the score of the greater label
        score = _scores_1d(score, len(yt), fn)
        return _binary_auc(yt == classes[-1], score, w, max_fpr, fn)
    if max_fpr is not None and max_fpr != 1:
        raise ValueError(f"{fn}: max_fpr (a partial area) is not available for several classes")
    if multi_class == "raise":
        raise ValueError(f"{fn}: y_true has several classes: pass multi_class='ovr'")
    if multi_class != "ovr":
        raise ValueError(f"{fn}: argument 'multi_class' must be 'ovr' (one-vs-rest), got "
                         f"{multi_class!r}")
    if average not in ("macro", "weighted", "micro", None):
        raise ValueError(f"{fn}: argument 'average' must be 'macro', 'weighted', 'micro' or "
                         f"None, got {average!r}")
    if score.ndim != 2 or score.dtype.kind not in "biuf":
        raise ValueError(f"{fn}: argument 'y_score' must be (n_samples, n_classes) numbers for "
                         f"several classes, got shape {score.shape}")
    if score.shape[0] != len(yt):
        raise ValueError(f"{fn}: y_true and y_score must have the same length, got {len(yt)} and "
                         f"{score.shape[0]}")
    score = score.astype(np.float64)
    if not np.all(np.isfinite(score)):
        raise ValueError(f"{fn}: argument 'y_score' must be finite (no NaN or inf)")
    if not np.allclose(score.sum(axis=1), 1.0):
        raise ValueError(f"{fn}: the rows of 'y_score' must be probabilities summing to 1 for "
                         "several classes")
    if labels is not None:
        labels = _label_list(labels, fn)
        if len(np.unique(labels)) != len(labels) or not np.array_equal(np.sort(labels), labels):
            raise ValueError(f"{fn}: argument 'labels' must be unique and sorted")
        if len(np.setdiff1d(yt, labels)):
            raise ValueError(f"{fn}: y_true holds labels not in 'labels'")
        classes = labels
    if len(classes) != score.shape[1]:
        raise ValueError(f"{fn}: {len(classes)} classes but y_score has {score.shape[1]} columns")
    onehot = yt[:, None] == classes[None, :]
    if average == "micro":
        weights = None if w is None else np.repeat(w, len(classes))
        return _binary_auc(onehot.reshape(-1), score.reshape(-1), weights, None, fn)
    per_class = np.array([_binary_auc(onehot[:, c], score[:, c], w, None, fn)
                          for c in range(len(classes))])
    if average is None:
        return per_class
    if average == "weighted":
        prevalence = onehot.sum(axis=0) if w is None else (onehot * w[:, None]).sum(axis=0)
        return float(np.average(per_class, weights=prevalence))
    return float(per_class.mean())

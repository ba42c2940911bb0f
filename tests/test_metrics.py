"""fastnn.metrics against cases worked out by hand (scikit-learn's
definitions): a multi-class task with a class never predicted, a binary
task with either positive label, string labels, sample weights, ties in ROC
scores, one-class labels, and bad input."""
import itertools
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import metrics as M

# A multi-class case worked by hand: class 3 is never predicted.
#   class  tp  predicted  true   precision  recall  f1
#   0      1   2          2      1/2        1/2     1/2
#   1      1   2          2      1/2        1/2     1/2
#   2      2   3          2      2/3        1       4/5
#   3      0   0          1      0/0        0       0
Y_TRUE = [0, 1, 2, 2, 0, 1, 3]
Y_PRED = [0, 2, 2, 2, 1, 1, 0]


def test_accuracy():
    assert M.accuracy_score(Y_TRUE, Y_PRED) == pytest.approx(4 / 7)
    assert M.accuracy_score(Y_TRUE, Y_PRED, normalize=False) == 4
    assert M.accuracy_score(np.array(Y_TRUE), fastnn.tensor(np.array(Y_PRED))) == \
        pytest.approx(4 / 7)
    w = [1, 2, 3]
    assert M.accuracy_score([0, 1, 1], [0, 0, 1], sample_weight=w) == pytest.approx(4 / 6)
    assert M.accuracy_score([0, 1, 1], [0, 0, 1], normalize=False, sample_weight=w) == 4.0


def test_confusion_matrix_and_its_normalisations():
    cm = M.confusion_matrix(Y_TRUE, Y_PRED)
    want = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(cm, want)
    assert cm.dtype == np.int64
    np.testing.assert_allclose(M.confusion_matrix(Y_TRUE, Y_PRED, normalize="true"),
                               want / np.array([[2], [2], [2], [1]]))
    # column 3 is never predicted: 0/0 becomes 0
    np.testing.assert_allclose(M.confusion_matrix(Y_TRUE, Y_PRED, normalize="pred"),
                               [[.5, .5, 0, 0], [0, .5, 1 / 3, 0], [0, 0, 2 / 3, 0], [.5, 0, 0, 0]])
    np.testing.assert_allclose(M.confusion_matrix(Y_TRUE, Y_PRED, normalize="all"), want / 7)
    # labels reorder and select; samples outside them are left out
    np.testing.assert_array_equal(M.confusion_matrix(Y_TRUE, Y_PRED, labels=[2, 0]),
                                  [[2, 0], [0, 1]])
    np.testing.assert_array_equal(
        M.confusion_matrix([0, 1, 1], [0, 0, 1], sample_weight=[1.0, 2.0, 3.0]),
        [[1.0, 0.0], [2.0, 3.0]])


def test_confusion_matrix_of_string_labels():
    cm = M.confusion_matrix(["cat", "dog", "cat", "bird"], ["cat", "cat", "cat", "bird"])
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 2, 0], [0, 1, 0]])  # bird, cat, dog


@pytest.mark.parametrize("zero_division,precision_3,macro_p,weighted_p", [
    (0, 0.0, 5 / 12, (1 + 1 + 4 / 3) / 7),
    (1, 1.0, (0.5 + 0.5 + 2 / 3 + 1) / 4, (1 + 1 + 4 / 3 + 1) / 7),
    (np.nan, np.nan, 5 / 9, (1 + 1 + 4 / 3) / 6),  # NaN is left out of the averages
], ids=["0", "1", "nan"])
def test_per_class_and_averaged_scores(zero_division, precision_3, macro_p, weighted_p):
    kw = dict(zero_division=zero_division)
    p = M.precision_score(Y_TRUE, Y_PRED, average=None, **kw)
    np.testing.assert_allclose(p, [0.5, 0.5, 2 / 3, precision_3])
    np.testing.assert_allclose(M.recall_score(Y_TRUE, Y_PRED, average=None, **kw),
                               [0.5, 0.5, 1.0, 0.0])
    np.testing.assert_allclose(M.f1_score(Y_TRUE, Y_PRED, average=None, **kw),
                               [0.5, 0.5, 0.8, 0.0])
    assert M.precision_score(Y_TRUE, Y_PRED, average="macro", **kw) == pytest.approx(macro_p)
    assert M.recall_score(Y_TRUE, Y_PRED, average="macro", **kw) == pytest.approx(0.5)
    assert M.f1_score(Y_TRUE, Y_PRED, average="macro", **kw) == pytest.approx(0.45)
    for fn in (M.precision_score, M.recall_score, M.f1_score):
        assert fn(Y_TRUE, Y_PRED, average="micro", **kw) == pytest.approx(4 / 7)
    assert M.precision_score(Y_TRUE, Y_PRED, average="weighted", **kw) == \
        pytest.approx(weighted_p)
    assert M.recall_score(Y_TRUE, Y_PRED, average="weighted", **kw) == pytest.approx(4 / 7)
    assert M.f1_score(Y_TRUE, Y_PRED, average="weighted", **kw) == pytest.approx(3.6 / 7)


def test_zero_division_warn_counts_as_0_and_warns():
    with pytest.warns(M.UndefinedMetricWarning, match="Precision is ill-defined"):
        p = M.precision_score(Y_TRUE, Y_PRED, average="macro")
    assert p == pytest.approx(5 / 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.recall_score(Y_TRUE, Y_PRED, average="macro")  # recall is defined everywhere here


def test_precision_recall_fscore_support_gives_the_supports():
    p, r, f, s = M.precision_recall_fscore_support(Y_TRUE, Y_PRED, zero_division=0)
    np.testing.assert_array_equal(s, [2, 2, 2, 1])
    assert M.precision_recall_fscore_support(Y_TRUE, Y_PRED, average="macro",
                                             zero_division=0)[3] is None
    _, _, f2, _ = M.precision_recall_fscore_support(Y_TRUE, Y_PRED, beta=2.0, average=None,
                                                    zero_division=0)
    np.testing.assert_allclose(f2, [0.5, 0.5, 5 * 2 / (5 * 2 + 4 * 0 + 1), 0.0])


def test_binary_scores_for_either_positive_label():
    y_true, y_pred = [0, 1, 1, 0, 1, 1], [0, 1, 0, 0, 1, 1]
    assert M.precision_score(y_true, y_pred) == 1.0
    assert M.recall_score(y_true, y_pred) == pytest.approx(0.75)
    assert M.f1_score(y_true, y_pred) == pytest.approx(6 / 7)
    assert M.precision_score(y_true, y_pred, pos_label=0) == pytest.approx(2 / 3)
    assert M.recall_score(y_true, y_pred, pos_label=0) == 1.0
    assert M.f1_score(y_true, y_pred, pos_label=0) == pytest.approx(0.8)
    y = ["spam", "ham", "spam"]
    assert M.recall_score(y, ["spam", "spam", "ham"], pos_label="spam") == 0.5
    assert M.precision_score([0, 1, 1], [0, 0, 1], sample_weight=[1, 2, 3]) == 1.0
    assert M.recall_score([0, 1, 1], [0, 0, 1], sample_weight=[1, 2, 3]) == pytest.approx(0.6)


def test_labels_of_a_single_class():
    assert M.precision_score([1, 1, 1], [1, 1, 1]) == 1.0
    assert M.accuracy_score([0, 0, 0], [0, 0, 0]) == 1.0
    np.testing.assert_array_equal(M.confusion_matrix([0, 0, 0], [0, 0, 0]), [[3]])
    # the positive class never occurs: precision and recall are 0/0
    with pytest.warns(M.UndefinedMetricWarning):
        assert M.f1_score([0, 0, 0], [0, 0, 0]) == 0.0
    assert M.recall_score([0, 0, 0], [0, 0, 0], zero_division=1) == 1.0
    assert M.f1_score([0, 0, 0], [0, 0, 0], average="macro") == 1.0  # class 0 is perfect


def test_weighted_average_of_labels_that_never_occur_is_the_plain_mean():
    # labels 5 and 6 have no support: weights sum to 0, so the mean is unweighted
    assert M.precision_score([0, 1], [1, 0], labels=[5, 6], average="weighted",
                             zero_division=1) == 1.0


def test_classification_report_text_and_dict():
    text = M.classification_report(Y_TRUE, Y_PRED, zero_division=0)
    assert text == (
        "              precision    recall  f1-score   support\n"
        "\n"
        "           0       0.50      0.50      0.50         2\n"
        "           1       0.50      0.50      0.50         2\n"
        "           2       0.67      1.00      0.80         2\n"
        "           3       0.00      0.00      0.00         1\n"
        "\n"
        "    accuracy                           0.57         7\n"
        "   macro avg       0.42      0.50      0.45         7\n"
        "weighted avg       0.48      0.57      0.51         7\n")
    d = M.classification_report(Y_TRUE, Y_PRED, zero_division=0, output_dict=True,
                                target_names=["a", "b", "c", "d"])
    assert d["c"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1-score":
                      pytest.approx(0.8), "support": 2}
    assert d["accuracy"] == pytest.approx(4 / 7)
    assert d["macro avg"]["f1-score"] == pytest.approx(0.45) and d["weighted avg"]["support"] == 7


def test_classification_report_of_a_subset_of_labels_shows_the_micro_average():
    text = M.classification_report(Y_TRUE, Y_PRED, labels=[0, 2], digits=3)
    lines = text.splitlines()
    assert lines[-3].split() == ["micro", "avg", "0.600", "0.750", "0.667", "4"]
    assert "accuracy" not in text


# ================================================================ ROC

TIE_TRUE = [0, 0, 1, 1, 1, 0]
TIE_SCORE = [0.1, 0.4, 0.35, 0.8, 0.4, 0.8]  # ties at 0.8 and at 0.4, each across classes


def test_roc_curve_with_tied_scores():
    fpr, tpr, thr = M.roc_curve(TIE_TRUE, TIE_SCORE)
    np.testing.assert_allclose(fpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_roc_auc_counts_tied_pairs_as_half():
    # pairs (positive, negative) ordered right: 5 of 9, ties counting 1/2
    assert M.roc_auc_score(TIE_TRUE, TIE_SCORE) == pytest.approx(5 / 9)
    assert M.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.roc_auc_score(["b", "a", "b"], [0.9, 0.2, 0.6]) == 1.0  # "b" is the greater label


def test_roc_curve_drops_points_on_straight_segments():
    y, s = [1, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1]
    fpr, tpr, thr = M.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.7, 0.1])
    fpr, tpr, _ = M.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1, 1])


def test_roc_curve_pos_label_and_weights():
    fpr, tpr, _ = M.roc_curve(["n", "p", "p", "n"], [0.2, 0.9, 0.4, 0.5], pos_label="p",
                              drop_intermediate=False)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    # weight 3 on the first negative: it counts as three
    fpr, tpr, _ = M.roc_curve([0, 1, 0], [0.9, 0.5, 0.1], sample_weight=[3, 1, 1],
                              drop_intermediate=False)
    np.testing.assert_allclose(fpr, [0, 0.75, 0.75, 1])
    np.testing.assert_allclose(tpr, [0, 0, 1, 1])


def test_roc_curve_of_one_class_warns_and_gives_nan():
    with pytest.warns(M.UndefinedMetricWarning, match="No negative samples"):
        fpr, tpr, _ = M.roc_curve([1, 1], [0.3, 0.6])
    assert np.isnan(fpr).all() and np.array_equal(tpr, [0, 0.5, 1])


def test_partial_roc_auc_is_standardised():
    assert M.roc_auc_score([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], max_fpr=0.5) == 1.0
    # the curve of TIE_* runs on the diagonal up to fpr 1/2: chance level
    assert M.roc_auc_score(TIE_TRUE, TIE_SCORE, max_fpr=0.5) == pytest.approx(0.5)


MC_TRUE = [0, 1, 2, 2, 1, 0, 0]
MC_SCORE = [[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3],
            [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]]


def pairwise_auc(positive, score):
    """The fraction of (positive, negative) pairs ranked right, ties 1/2."""
    pos = [s for p, s in zip(positive, score) if p]
    neg = [s for p, s in zip(positive, score) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_multiclass_roc_auc_one_vs_rest():
    # by hand: class 0 is ranked perfectly, class 1 8.5/10, class 2 9.5/10
    per_class = M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", average=None)
    np.testing.assert_allclose(per_class, [1.0, 0.85, 0.95])
    assert M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr") == pytest.approx(2.8 / 3)
    assert M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", average="weighted") == \
        pytest.approx((3 * 1.0 + 2 * 0.85 + 2 * 0.95) / 7)
    onehot = (np.array(MC_TRUE)[:, None] == np.arange(3)).ravel()
    assert M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", average="micro") == \
        pytest.approx(pairwise_auc(onehot, np.array(MC_SCORE).ravel()))


@pytest.mark.parametrize("call,match", [
    (lambda: M.accuracy_score([0, 1, 1], [0, 1]), "same length"),
    (lambda: M.accuracy_score([], []), "empty"),
    (lambda: M.accuracy_score([[0, 1], [1, 0]], [[0, 1], [1, 0]]), "1-D"),
    (lambda: M.accuracy_score([0.5, 1.2], [0, 1]), "continuous"),
    (lambda: M.accuracy_score(["a", "b"], [0, 1]), "mix string and number"),
    (lambda: M.accuracy_score([0, 1], [0, 1], sample_weight=[1.0]), "sample_weight"),
    (lambda: M.f1_score(Y_TRUE, Y_PRED), "average='binary'"),
    (lambda: M.f1_score(Y_TRUE, Y_PRED, average="samples"), "'average' must be one of"),
    (lambda: M.precision_score([0, 2, 2], [0, 2, 0], pos_label=1), "pos_label=1 is not a valid"),
    (lambda: M.recall_score([0, 1], [0, 1], zero_division="ignore"), "zero_division"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], normalize="rows"), "normalize"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], labels=[5, 6]), "at least one label"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], labels=[]), "at least one label"),
    (lambda: M.roc_curve([0, 1, 2], [0.1, 0.2, 0.3]), "pass pos_label"),
    (lambda: M.roc_curve(["a", "b"], [0.1, 0.2]), "pos_label"),
    (lambda: M.roc_curve([0, 1], [0.1, np.nan]), "finite"),
    (lambda: M.roc_curve([0, 1], [0.1, 0.2, 0.3]), "same length"),
    (lambda: M.roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9]), "only one class"),
    (lambda: M.roc_auc_score([0, 1], [0.2, 0.5], max_fpr=0), "max_fpr"),
    (lambda: M.roc_auc_score(MC_TRUE, MC_SCORE), "multi_class='ovr'"),
    (lambda: M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovo"), "multi_class"),
    (lambda: M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", average="samples"),
     "'average'"),
    (lambda: M.roc_auc_score(MC_TRUE, np.array(MC_SCORE) * 2, multi_class="ovr"), "sum"),
    (lambda: M.roc_auc_score(MC_TRUE, np.array(MC_SCORE)[:, :2] / np.array(MC_SCORE)[:, :2]
                             .sum(1, keepdims=True), multi_class="ovr"), "columns"),
    (lambda: M.roc_auc_score([0, 1, 2, 0], np.full((4, 4), 0.25), multi_class="ovr",
                             labels=[0, 1, 2, 3]), "only one class"),
    (lambda: M.roc_auc_score(MC_TRUE, MC_SCORE, multi_class="ovr", labels=[2, 1, 0]),
     "unique and sorted"),
], ids=["lengths", "empty", "2-D", "continuous", "mixed", "weights", "binary-average",
        "unknown-average", "pos_label", "zero_division", "normalize", "labels-absent",
        "labels-empty", "roc-multiclass", "roc-strings", "roc-nan", "roc-lengths", "auc-one-class",
        "max_fpr", "auc-no-multi_class", "auc-ovo", "auc-average", "auc-not-probabilities",
        "auc-columns", "auc-absent-class", "auc-labels-order"])
def test_bad_input_is_a_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()

"""fastnn.explain: saliency against finite differences of the class score,
Grad-CAM where the answer is known (a task whose class is decided by the left
half of the image only), the bilinear resize, and bad arguments."""
import numpy as np
import pytest

import fastnn
from fastnn import explain, nn
from fastnn.explain import _resize_bilinear
from fastnn.models import Sequential


def small_model(last_activation):
    """Dense(4, tanh) over each pixel's channels -> Flatten -> Dense(3), in
    float64 (the convolution computes in float32, too coarse for finite
    differences), for (5, 6, 2) images."""
    fastnn.manual_seed(3)
    return nn.Sequential([
        nn.Dense(4, activation="tanh", input_shape=(5, 6, 2), dtype=np.float64),
        nn.Flatten(),
        nn.Dense(3, activation=last_activation, input_shape=(5 * 6 * 4,), dtype=np.float64),
    ])


def scores(model, x):
    with fastnn.no_grad():
        return model(fastnn.tensor(x, dtype=np.float64)).numpy()


def test_saliency_matches_finite_differences_of_the_class_score():
    model = small_model(None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 2))
    classes = np.array([2, 0])
    got = explain.saliency(model, x, class_index=classes)
    assert got.shape == (2, 5, 6) and got.dtype == np.float32
    # central differences of each image's class score, pixel by pixel
    grad = np.zeros_like(x)
    eps = 1e-6
    for idx in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[idx] = eps
        diff = scores(model, x + step) - scores(model, x - step)
        grad[idx] = diff[idx[0], classes[idx[0]]] / (2 * eps)
    want = np.abs(grad).max(axis=3)
    want /= want.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # the predicted class by default
    predicted = scores(model, x).argmax(axis=1)
    np.testing.assert_array_equal(explain.saliency(model, x),
                                  explain.saliency(model, x, class_index=predicted))


def test_saliency_of_a_softmax_model_uses_the_logits():
    linear, softmax = small_model(None), small_model("softmax")
    x = np.random.default_rng(1).normal(size=(3, 5, 6, 2))
    np.testing.assert_allclose(explain.saliency(softmax, x, class_index=1),
                               explain.saliency(linear, x, class_index=1), rtol=1e-6)


def left_half_task(n, seed):
    """16x16 grey images in 3 classes, told apart by the left half only: it
    holds stripes, horizontal (class 0), vertical (1) or diagonal (2), of a
    random period and phase; noise everywhere, nothing else on the right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.2, (n, 16, 16, 1)).astype(np.float32)
    rows, cols = np.mgrid[0:16, 0:8]
    for i in range(n):
        t = (rows, cols, rows + cols)[y[i]]
        x[i, :, :8, 0] += np.sin(2 * np.pi * t / rng.uniform(3, 5) + rng.uniform(0, 2 * np.pi))
    return x, y


def test_grad_cam_looks_where_the_class_is_decided():
    x, y = left_half_task(600, seed=0)
    x_test, y_test = left_half_task(120, seed=100)
    fastnn.manual_seed(0)
    model = Sequential([
        nn.Conv2D(8, (3, 3), activation="relu", padding="same", input_shape=(16, 16, 1)),
        nn.Conv2D(8, (3, 3), activation="relu", padding="same"),
        nn.MaxPooling2D((4, 4)),
        nn.Flatten(),
        nn.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert model.evaluate(x_test, y_test)["accuracy"] >= 0.9
    heat = explain.grad_cam(model, x_test, class_index=y_test)
    n = len(x_test)
    assert heat.shape == (n, 16, 16) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    peaks = heat.reshape(n, -1).max(axis=1)
    np.testing.assert_allclose(peaks[peaks > 0], 1, rtol=1e-6)
    left = heat[:, :, :8].sum() / heat.sum()
    assert left >= 0.8, f"only {left:.0%} of the heat is on the left half"
    # the same layer named three ways; the default is the last Conv2D
    default = explain.grad_cam(model, x_test[:5])
    np.testing.assert_array_equal(explain.grad_cam(model, x_test[:5], layer=1), default)
    np.testing.assert_array_equal(explain.grad_cam(model, x_test[:5], layer=model[1]), default)
    assert model.training  # its mode is put back


def test_bilinear_resize_aligns_pixel_centres():
    # a linear ramp stays linear inside, and is held at the edges
    m = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    f = np.array([0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(_resize_bilinear(m, (4, 4))[0], 2 * f[:, None] + f[None, :])
    # the same size is the identity; a constant stays constant
    r = np.random.default_rng(0).random((2, 3, 5))
    np.testing.assert_allclose(_resize_bilinear(r, (3, 5)), r)
    np.testing.assert_allclose(_resize_bilinear(np.full((1, 2, 3), 7.0), (9, 4)), 7.0)


def test_bad_arguments():
    model = small_model("softmax")
    x = np.zeros((2, 5, 6, 2))
    with pytest.raises(ValueError, match="'x'"):
        explain.saliency(model, np.zeros((5, 6)))
    with pytest.raises(TypeError, match="'x'"):
        explain.saliency(model, "images")
    with pytest.raises(ValueError, match="'class_index'"):
        explain.saliency(model, x, class_index=3)
    with pytest.raises(ValueError, match="'class_index'"):
        explain.saliency(model, x, class_index=[0, 1, 2])
    with pytest.raises(TypeError, match="'model'"):
        explain.grad_cam(model[0], x)
    with pytest.raises(ValueError, match="'layer'"):
        explain.grad_cam(model, x, layer=5)
    with pytest.raises(ValueError, match="no layer named"):
        explain.grad_cam(model, x, layer="conv2d_7")
    with pytest.raises(ValueError, match="feature maps"):
        explain.grad_cam(model, x, layer=1)
    with pytest.raises(ValueError, match="no Conv2D"):
        explain.grad_cam(model, x)

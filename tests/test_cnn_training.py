"""End to end: a small CNN of fastnn.nn layers learns a seeded synthetic image
task with plain SGD (acceptance of the convolution issue)."""
import numpy as np

import fastnn
import fastnn.functional as F
from fastnn import nn


def bars(n, size=12, seed=0):
    """Noisy size x size x 1 images of one bar (4 pixels long) at a random
    place, in four classes: horizontal, vertical, diagonal, anti-diagonal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.2, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, 4, n)
    steps = {0: (0, 1), 1: (1, 0), 2: (1, 1), 3: (1, -1)}
    for i, label in enumerate(y):
        dr, dc = steps[int(label)]
        r = rng.integers(0, size - 4)
        c = rng.integers(3 if dc < 0 else 0, size - (0 if dc < 0 else 4))
        for k in range(4):
            x[i, r + dr * k, c + dc * k, 0] += 1.0
    return x, y.astype(np.int64)


def test_small_cnn_learns_bar_orientations_with_sgd():
    fastnn.manual_seed(0)
    x, y = bars(1200, seed=1)
    x_test, y_test = bars(400, seed=2)
    model = nn.Sequential([
        nn.Conv2D(8, 3, padding="same", activation="relu"),
        nn.MaxPooling2D(2),
        nn.Conv2D(16, 3, padding="same", activation="relu"),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dense(4),
    ])
    rng = np.random.default_rng(3)
    lr, batch = 0.1, 32
    for _ in range(20):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            loss = F.cross_entropy(model(fastnn.tensor(x[idx])), y[idx])
            model.zero_grad()
            loss.backward()
            with fastnn.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
    with fastnn.no_grad():
        pred = model(fastnn.tensor(x_test)).numpy().argmax(axis=1)
    accuracy = float((pred == y_test).mean())
    assert accuracy >= 0.95, accuracy

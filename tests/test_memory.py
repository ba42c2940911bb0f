"""Steady memory: fit holds its resident size from epoch to epoch (no
growth from graphs kept alive, workspaces or the allocator's kept-free
memory). Measured in a fresh interpreter, from /proc/self/statm."""
import os

import pytest

from conftest import last_json_line, run_python

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                                reason="needs Linux's /proc/self/statm")

CHILD = """
import json, os
import numpy as np
import fastnn
from fastnn import callbacks, models, nn

PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

class Rss(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.sizes = []
    def on_epoch_end(self, epoch, logs=None):
        self.sizes.append(rss())

fastnn.manual_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(384, 16, 16, 3)).astype(np.float32)
y = rng.integers(0, 4, size=384)
model = models.Sequential([
    nn.Conv2D(16, 3, activation="relu", padding="same"), nn.MaxPooling2D(2),
    nn.Conv2D(32, 3, activation="relu"), nn.Flatten(), nn.Dropout(0.2),
    nn.Dense(32, activation="relu"), nn.BatchNormalization(), nn.Dense(4, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
short, long = Rss(), Rss()
model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[short],
          validation_data=(x[:64], y[:64]))
model.fit(x, y, batch_size=32, epochs=8, verbose=0, callbacks=[long],
          validation_data=(x[:64], y[:64]))
print(json.dumps({"short": short.sizes, "long": long.sizes}))
"""

MIB = 2**20


def test_fit_holds_its_resident_size_over_2_and_8_epochs():
    sizes = last_json_line(run_python(CHILD, timeout=600, OMP_NUM_THREADS="2"))
    short, long = sizes["short"], sizes["long"]
    assert len(short) == 2 and len(long) == 8
    # Steps leave nothing behind: one epoch (12 steps) holding its graphs
    # would add several MiB of activations; allow 3 MiB of allocator noise.
    base = short[-1]
    tolerance = 3 * MIB + 0.02 * base
    assert long[-1] - base <= tolerance, f"RSS per epoch (MiB): {[s / MIB for s in short + long]}"
    # no trend: the second half of the long run is not above its first half
    first, second = long[:4], long[4:]
    assert max(second) - max(first) <= tolerance / 2, \
        f"RSS grows: per epoch (MiB) {[round(s / MIB, 2) for s in long]}"

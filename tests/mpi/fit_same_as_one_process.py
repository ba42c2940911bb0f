"""fit on however many ranks this runs on (1 without mpiexec) and write the
final weights and the history to argv[2] (rank 0). argv[1] picks the model:
"cnn" (arrays), "flow" (the CNN on ImageDataGenerator.flow batches) or "lstm".
Each rank seeds itself differently, so matching one process needs the
broadcast of rank 0's weights and shuffle seed."""
import json
import sys

import numpy as np

import fastnn
from fastnn import distributed, nn
from fastnn.data import ImageDataGenerator
from fastnn.models import Sequential
from fastnn.optim import SGD, Adam

kind, out_path = sys.argv[1], sys.argv[2]
distributed.init()
fastnn.manual_seed(1000 + distributed.rank())  # different draws on every rank

rng = np.random.default_rng(7)  # the data is the same on every rank
# batch 8: five full batches, then an uneven last one of 5 rows (2 + 3 on 2 ranks),
# or for "cnn" of 1 row (rank 0 has none of it and only takes part in the sums)
n = 41 if kind == "cnn" else 45
if kind == "lstm":
    x = rng.standard_normal((n, 6, 3)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    layers = [nn.LSTM(5), nn.Dense(2, activation="softmax")]
else:
    x = rng.random((n, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    layers = [nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(), nn.Flatten(),
              nn.Dense(3, activation="softmax")]
model = Sequential(layers)
model.build((None,) + x.shape[1:])
fastnn.manual_seed(distributed.rank())  # rank 0 (and one process) draw the shuffle seed from 0
opt = Adam(model.parameters(), lr=0.01) if kind == "lstm" else \
    SGD(model.parameters(), lr=0.1, momentum=0.9)
# precision is no mean over rows: the ranks gather their outputs for it
metrics = ["accuracy", "precision"] if kind == "lstm" else ["accuracy"]
model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=metrics)
validation = (x[:11], y[:11])
if kind == "flow":
    gen = ImageDataGenerator(horizontal_flip=True, width_shift_range=0.1)
    history = model.fit(gen.flow(x, y, batch_size=8, seed=5), epochs=3,
                        validation_data=validation, verbose=0)
else:
    history = model.fit(x, y, batch_size=8, epochs=3, validation_data=validation, verbose=0)

state = model.state_dict()
same = distributed.allreduce(np.concatenate([v.ravel() for v in state.values()]), op="max")
assert np.array_equal(same, np.concatenate([v.ravel() for v in state.values()])), \
    "the ranks ended with different weights"
if distributed.rank() == 0:
    np.savez(out_path, **state)
    with open(out_path + ".json", "w") as f:
        json.dump(history.history, f)

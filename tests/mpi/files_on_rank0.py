"""fit with ModelCheckpoint, CSVLogger, EarlyStopping and verbose=2, then
model.save: every path names the rank, so the test sees who wrote. Each rank
prints its history's length as its last line."""
import json
import os
import sys

import numpy as np

import fastnn
from fastnn import callbacks, distributed, nn
from fastnn.models import Sequential

folder = sys.argv[1]
distributed.init()
x = np.random.default_rng(0).random((40, 5)).astype(np.float32)
y = (x.sum(axis=1) > 2.5).astype(np.int64)
model = Sequential([nn.Dense(2, activation="softmax")])
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(
    x, y, batch_size=8, epochs=30, verbose=2, validation_data=(x[:10], y[:10]),
    callbacks=[callbacks.ModelCheckpoint(os.path.join(folder, f"ckpt-{distributed.rank()}.npz")),
               callbacks.CSVLogger(os.path.join(folder, f"log-{distributed.rank()}.csv")),
               callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)])
model.save(os.path.join(folder, f"model-{distributed.rank()}.npz"))
print(json.dumps({"rank": distributed.rank(), "epochs": len(history.history["loss"]),
                  "threads": fastnn.get_num_threads()}))

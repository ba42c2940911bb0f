"""Rank 1 raises in a callback at the end of the first epoch while rank 0
goes on into the next epoch's allreduce: the job must end, not hang. fit
joins the world by itself (no init() here)."""
import numpy as np

from fastnn import callbacks, distributed, nn
from fastnn.models import Sequential


class Boom(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if distributed.rank() == 1:
            raise RuntimeError("boom on purpose")


x = np.random.default_rng(0).random((64, 5)).astype(np.float32)
y = (x.sum(axis=1) > 2.5).astype(np.int64)
model = Sequential([nn.Dense(2, activation="softmax")])
model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
model.fit(x, y, batch_size=8, epochs=1000, callbacks=[Boom()], verbose=0)

"""Keras-style models: ``Sequential`` with compile / fit / evaluate / predict /
summary, and saving to one file that holds no pickles (``save`` /
``load_model``).

    model = Sequential([nn.Conv2D(32, 3, activation="relu"), nn.MaxPooling2D(),
                        nn.Flatten(), nn.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=10, validation_split=0.1)

A model file is a NumPy ``.npz`` archive written with ``allow_pickle=False``:
one JSON document (the layer configs, the compile arguments, the optimizer's
hyperparameters and scalar state) and the arrays (weights, moving statistics,
optimizer moments). It is written to a temporary file in the same folder and
renamed, so a crash never leaves a torn file; loading reads arrays and JSON
only and rebuilds layers from fastnn's own classes, so a hostile file can
fail to load but cannot run code.

One module per concern: sequential (the model, its fit loop), batches,
metric_names, file_format, loading.
"""
from .loading import load_model
from .sequential import Sequential

__all__ = ["Sequential", "load_model"]

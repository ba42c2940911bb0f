"""A model saved before any fit or init(): the save joins the world, so only
rank 0 writes. Each rank names its file by its MPI rank, so the test sees who
wrote."""
import os
import sys

import numpy as np

from fastnn import nn
from fastnn.models import Sequential

rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
model = Sequential([nn.Dense(2, activation="softmax")])
model(np.zeros((1, 3), np.float32))
model.save_weights(os.path.join(sys.argv[1], f"weights-{rank}.npz"))
model.save(os.path.join(sys.argv[1], f"model-{rank}.npz"))

"""A hand-written loop with DistributedOptimizer: each rank takes its half of
every batch of 12 rows; the ranks start from different weights, so
broadcast_parameters must come first. Rank 0 writes the final weights to
argv[1]. Without mpiexec the one process takes the whole batch."""
import sys

import numpy as np

import fastnn
from fastnn import distributed, nn
from fastnn import functional as F
from fastnn.optim import Adam

distributed.init()
r, size = distributed.rank(), distributed.world_size()
fastnn.manual_seed(r)
model = nn.Sequential([nn.Dense(7, activation="tanh"), nn.Dense(3)])
model(np.zeros((1, 4), np.float32))
before = model.state_dict()["0.kernel"]
distributed.broadcast_parameters(model)
if r == 1:
    assert not np.allclose(before, model.state_dict()["0.kernel"]), "rank 1 began as rank 0"

# buckets of at most 100 bytes: three buffers here, one holding two parameters
opt = distributed.DistributedOptimizer(Adam(model.parameters(), lr=0.05), bucket_bytes=100)
rng = np.random.default_rng(3)
for step in range(6):
    x = rng.standard_normal((12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    rows = slice(r * 12 // size, (r + 1) * 12 // size)
    opt.zero_grad()
    F.cross_entropy(model(fastnn.tensor(x[rows])), fastnn.tensor(y[rows])).backward()
    opt.step()
assert size == 1 or len(opt._reducer._buckets) == 3, opt._reducer._buckets
if r == 0:
    np.savez(sys.argv[1], **model.state_dict())

"""The collectives on 2 ranks, checked against values each rank can compute:
allreduce of arrays, Tensors and numbers; broadcast; and a mismatch between
the ranks' shapes, which must raise ValueError on both, not hang."""
import numpy as np

import fastnn
from fastnn import distributed, nn

distributed.init()
r, size = distributed.rank(), distributed.world_size()
assert size == 2

a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32) * (r + 1)   # rank 0: a0, rank 1: 2 * a0
a0 = a / (r + 1)
np.testing.assert_array_equal(distributed.allreduce(a, op="sum"), 3 * a0)
np.testing.assert_array_equal(distributed.allreduce(a), 1.5 * a0)
np.testing.assert_array_equal(distributed.allreduce(a, op="max"), 2 * a0)
np.testing.assert_array_equal(distributed.allreduce(a, op="min"), a0)
assert distributed.allreduce(np.arange(3) + r, op="sum").tolist() == [1, 3, 5]
t = distributed.allreduce(fastnn.tensor(a))
assert isinstance(t, fastnn.Tensor)
np.testing.assert_array_equal(t.numpy(), 1.5 * a0)
assert distributed.allreduce(r + 1, op="sum") == 3
assert distributed.allreduce(float(r)) == 0.5

assert distributed.broadcast({"from": r}, root=1) == {"from": 1}
b = distributed.broadcast(fastnn.tensor(a), root=0)
np.testing.assert_array_equal(b.numpy(), a0)

params = [fastnn.tensor(np.full((2, 3), r, np.float32)), fastnn.tensor(np.full(4, 10 + r))]
distributed.broadcast_parameters(params, root=1)
np.testing.assert_array_equal(params[0].numpy(), np.ones((2, 3)))
assert params[1].numpy().tolist() == [11] * 4 and params[1].dtype == np.int64

unbuilt_on_rank_1 = nn.Sequential([nn.Dense(2)])
if r == 0:
    unbuilt_on_rank_1(np.ones((1, 3), np.float32))
for call in (lambda: distributed.allreduce(np.zeros(2 + r, np.float32)),
             lambda: distributed.broadcast_parameters([fastnn.tensor(np.zeros(2 + r))]),
             lambda: distributed.broadcast_parameters(unbuilt_on_rank_1)):
    try:
        call()
    except ValueError as e:
        assert "different shapes" in str(e), e
    else:
        raise AssertionError("a shape mismatch between the ranks passed")
distributed.barrier()
print(f"rank {r} ok", flush=True)

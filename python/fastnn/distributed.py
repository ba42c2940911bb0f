"""Data-parallel training over MPI (the ``distributed`` extra: mpi4py and
Open MPI, ``pip install "fastnn[distributed]"``).

    mpiexec -n 2 python train.py

Every rank runs the same script. ``init()`` joins MPI's world (``fit`` does
so by itself under ``mpiexec``, unless FASTNN_DISTRIBUTED=0); elsewhere, or
without mpi4py, the world is this process alone and all here is a no-op.

Under ``fit`` on R ranks, ``batch_size`` is the global batch: every rank
draws the same shuffled order (seeded from rank 0) and takes rows
``[r*B//R, (r+1)*B//R)`` of each batch; gradients are averaged weighted by
the rows, so a step equals one process's on the whole batch up to float
summation order. Weights start as rank 0's; logs and validation are summed
over ranks, so callbacks decide the same everywhere. Rank 0 alone prints
and writes files (``save``, ``ModelCheckpoint``, ``CSVLogger``).
``ImageDataGenerator.flow`` needs the same ``seed=`` on every rank.

Randomness inside the model is each rank's own (``Dropout`` masks from its
seed, ``BatchNormalization`` statistics of its share; rank 0's are saved);
``flow``'s augmentation is drawn for the global batch, as in one process.

An uncaught exception on any rank prints ``fastnn.distributed: rank R
failed: ...`` and aborts the whole job (MPI_Abort), never a hang.
"""
import math
import numbers
import os
import sys
import time
import traceback
import warnings

import numpy as np

from . import _backend
from . import callbacks as _callbacks
from . import optim as _optim
from .autograd import enable_grad, no_grad
from .tensor import Tensor, tensor

__all__ = ["DistributedOptimizer", "allreduce", "barrier", "broadcast", "broadcast_parameters",
           "init", "is_initialized", "rank", "world_size"]

# environment variables that MPI launchers set in every rank they start
_LAUNCH_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
_BUCKET_BYTES = 4 << 20

_comm = None      # mpi4py's COMM_WORLD once init() found a world of several ranks
_MPI = None       # the mpi4py.MPI module then
_initialized = False


# ---------------------------------------------------------------- the world
def init():
    """Joins MPI's world when this process was started by ``mpiexec`` (and
    mpi4py is installed); otherwise the world is this process alone. Safe to
    call again. With several ranks on one machine, each rank's CPU kernels
    use its share of the cores (never more threads than were set), and an
    uncaught exception on any rank aborts the whole job."""
    global _comm, _MPI, _initialized
    if _initialized:
        return
    launched = _launched_size()
    if launched > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            warnings.warn(f"fastnn.distributed: started by an MPI launcher with {launched} ranks "
                          f"but mpi4py is not installed, so each rank trains alone; "
                          f"pip install 'fastnn[distributed]'", RuntimeWarning, stacklevel=2)
        else:
            if MPI.COMM_WORLD.Get_size() > 1:
                _MPI, _comm = MPI, MPI.COMM_WORLD
                _share_cores()
                _install_excepthook()
    _initialized = True


def is_initialized():
    """True once ``init()`` ran (whatever the world's size)."""
    return _initialized


def rank():
    """This process's rank in the world, 0 outside ``mpiexec``."""
    return 0 if _comm is None else _comm.Get_rank()


def world_size():
    """The number of ranks, 1 outside ``mpiexec``."""
    return 1 if _comm is None else _comm.Get_size()


def barrier():
    """Waits until every rank got here."""
    if _comm is not None:
        _comm.Barrier()


def _launched_size():
    for name in _LAUNCH_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def _share_cores():
    """Each of the L ranks on this machine takes cores // L threads (the
    cores it was bound to, when the launcher bound it), never raising a
    thread count that was set lower."""
    node = _comm.Split_type(_MPI.COMM_TYPE_SHARED)
    local = node.Get_size()
    node.Free()
    bound = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = os.cpu_count() or 1
    share = bound if bound is not None and bound < cores else cores // local
    _backend.set_num_threads(max(1, min(share, _backend.get_num_threads())))


def _install_excepthook():
    previous = sys.excepthook

    def abort_world(kind, value, tb):
        try:
            previous(kind, value, tb)
            detail = "".join(traceback.format_exception_only(kind, value)).strip()
            sys.stderr.write(f"fastnn.distributed: rank {rank()} failed: {detail}\n")
            sys.stderr.flush()
            sys.stdout.flush()
        finally:
            _comm.Abort(1)

    sys.excepthook = abort_world


# ---------------------------------------------------------------- collectives
_OPS = ("sum", "mean", "max", "min")


def allreduce(x, op="mean"):
    """The element-wise sum, mean, max or min of ``x`` over all ranks, of
    the same kind as ``x`` (a NumPy array, a Tensor on its device, or a
    number). Every rank must pass the same shape and dtype."""
    if op not in _OPS:
        raise ValueError(f"allreduce: argument 'op' must be one of {list(_OPS)}, got {op!r}")
    array, rewrap = _as_array(x, "allreduce")
    if op == "mean" and array.dtype.kind != "f":
        raise TypeError(f"allreduce: op='mean' needs floating-point values, got dtype "
                        f"{array.dtype}; use op='sum'")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"allreduce: argument 'x' must hold numbers, got dtype {array.dtype}")
    out = np.array(array, order="C", copy=True)
    if _comm is not None:
        _check_same(("allreduce", out.shape, out.dtype.str), "allreduce")
        _reduce_in_place(out, "sum" if op == "mean" else op)
        if op == "mean":
            out /= out.dtype.type(world_size())
    return rewrap(out)


def _reduce_in_place(array, op="sum"):
    """Allreduce of a C-contiguous array that every rank passes with the same
    shape and dtype (internal: no check)."""
    if _comm is not None:
        _comm.Allreduce(_MPI.IN_PLACE, array,
                        op={"sum": _MPI.SUM, "max": _MPI.MAX, "min": _MPI.MIN}[op])
    return array


def broadcast(x, root=0):
    """Rank ``root``'s ``x`` on every rank: an array, a Tensor (on this
    rank's device) or any picklable Python object."""
    root = _root(root, "broadcast")
    if _comm is None:
        return x
    if isinstance(x, Tensor):
        device = x.device
        value = _comm.bcast(_host(x), root=root)
        return tensor(value, device=None if device == "cpu" else device)
    return _comm.bcast(x, root=root)


def broadcast_parameters(params, root=0):
    """Copies rank ``root``'s values into ``params`` on every other rank, in
    place: a Module (its parameters and buffers, e.g. moving statistics), a
    dict of Tensors (``dict(model.named_parameters())``) or an iterable of
    Tensors. Every rank must pass the same names, shapes and dtypes."""
    root = _root(root, "broadcast_parameters")
    tensors = _tensor_list(params, "broadcast_parameters")
    if _comm is None:
        return
    _check_same(("broadcast_parameters",) + tuple((t.shape, t.dtype.str) for t in tensors),
                "broadcast_parameters")
    for dtype in sorted({t.dtype.str for t in tensors}):
        group = [t for t in tensors if t.dtype.str == dtype]
        flat = np.empty(sum(t.size for t in group), np.dtype(dtype))
        if rank() == root:
            _pack([_host(t) for t in group], flat)
        _comm.Bcast(flat, root=root)
        with no_grad():
            offset = 0
            for t in group:
                t.copy_(_device_array(flat[offset:offset + t.size].reshape(t.shape), t))
                offset += t.size


def _as_array(x, fn):
    """(ndarray, function that turns a result back into x's kind)."""
    if isinstance(x, Tensor):
        device = x.device
        return _host(x), lambda a: tensor(a, device=None if device == "cpu" else device)
    if isinstance(x, np.ndarray):
        return x, lambda a: a
    if isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, bool):
        return np.asarray(x), lambda a: a.item()
    raise TypeError(f"{fn}: argument 'x' must be a NumPy array, a Tensor or a number, got "
                    f"{type(x).__name__}")


def _host(t):
    return t.numpy() if t.device == "cpu" else t.to("cpu").numpy()


def _device_array(a, like):
    return a if like.device == "cpu" else tensor(a, device=like.device)


def _root(root, fn):
    if isinstance(root, bool) or not isinstance(root, numbers.Integral):
        raise TypeError(f"{fn}: argument 'root' must be an int, got {type(root).__name__}")
    if not 0 <= root < world_size():
        raise ValueError(f"{fn}: argument 'root' must be in [0, {world_size()}), got {root}")
    return int(root)


def _tensor_list(params, fn):
    if hasattr(params, "named_parameters") and hasattr(params, "buffers"):
        params = list(params.parameters()) + list(params.buffers())
    elif isinstance(params, dict):
        params = list(params.values())
    elif isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, (str, bytes, np.ndarray)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{fn}: argument 'params' must be a Module, a dict of Tensors or an "
                        f"iterable of Tensors, got {type(params).__name__}")
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn}: params[{i}] must be a Tensor, got {type(p).__name__}")
    return params


def _check_same(signature, fn):
    """ValueError on every rank when the ranks' signatures differ (a
    mismatched collective would hang or mix up memory instead)."""
    signatures = _comm.allgather(signature)
    if any(s != signatures[0] for s in signatures):
        ranks = "; ".join(f"rank {r}: {s[1:]}" for r, s in enumerate(signatures))
        raise ValueError(f"{fn}: the ranks passed different shapes or dtypes ({ranks})")


def _pack(arrays, flat):
    offset = 0
    for a in arrays:
        flat[offset:offset + a.size] = a.reshape(-1)
        offset += a.size


# ---------------------------------------------------------------- gradients
class DistributedOptimizer:
    """Wraps a ``fastnn.optim`` optimizer: ``step()`` first averages every
    parameter's gradient over the ranks, packed into a few large buffers
    (``bucket_bytes`` each, at most; one allreduce per buffer, all in flight
    at once), then runs the wrapped optimizer's step. ``zero_grad``,
    ``state_dict``, ``load_state_dict``, ``param_groups`` and ``state`` are
    the wrapped optimizer's.

    ``step(weight=w)`` weights this rank's gradients by ``w`` (e.g. its
    number of samples): the result is sum_r(w_r * g_r) / sum_r(w_r), the
    whole batch's gradient when each rank's loss is the mean over its own
    rows. A parameter without a gradient counts as zero on that rank, and
    keeps no gradient when no rank has one. Start from the same weights on
    every rank: ``broadcast_parameters`` first. It is for loops of your own:
    ``Sequential.fit`` averages the gradients itself, so compile the model
    with the plain optimizer."""

    def __init__(self, optimizer, bucket_bytes=_BUCKET_BYTES):
        if not isinstance(optimizer, _optim.Optimizer):
            raise TypeError(f"DistributedOptimizer: argument 'optimizer' must be a fastnn.optim "
                            f"optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self._reducer = _GradientReducer(bucket_bytes, "DistributedOptimizer")

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self):
        return self.optimizer.defaults

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none)

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict):
        self.optimizer.load_state_dict(state_dict)

    def synchronize(self, weight=1.0):
        """Averages the gradients over the ranks (what ``step`` does first)."""
        self._reducer.average(_params_of(self.optimizer), weight)

    def step(self, closure=None, weight=1.0):
        """Averages the gradients over the ranks, then updates the parameters.
        ``closure`` (optional) recomputes the loss and the gradients first and
        its value is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self.synchronize(weight)
        self.optimizer.step()
        return loss


def _params_of(optimizer):
    return [p for group in optimizer.param_groups for p in group["params"]]


class _GradientReducer:
    """Sums w * grad over the ranks in buckets of whole parameters, in the
    reverse of the parameters' order (the order backward finishes them).
    A bucket is a float32 buffer: the parameters' gradients, then w, then
    one has-gradient flag per parameter; the buffers are kept between steps.
    ``seconds`` accumulates where the time goes (pack, allreduce, unpack)."""

    def __init__(self, bucket_bytes, fn):
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, numbers.Integral):
            raise TypeError(f"{fn}: argument 'bucket_bytes' must be an int, got "
                            f"{type(bucket_bytes).__name__}")
        if bucket_bytes < 4:
            raise ValueError(f"{fn}: argument 'bucket_bytes' must be >= 4, got {bucket_bytes}")
        self.bucket_bytes = int(bucket_bytes)
        self.fn = fn
        self._key = None
        self._buckets = []
        self.seconds = {"pack": 0.0, "allreduce": 0.0, "unpack": 0.0}
        self.steps = 0

    def average(self, params, weight):
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or \
                not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"{self.fn}: argument 'weight' must be a finite number >= 0, got "
                             f"{weight!r}")
        if _comm is None:
            return
        self._layout(params)
        t0 = time.perf_counter()
        for bucket in self._buckets:
            bucket.pack(float(weight))
        t1 = time.perf_counter()
        requests = [_comm.Iallreduce(_MPI.IN_PLACE, b.buffer, op=_MPI.SUM) for b in self._buckets]
        _MPI.Request.Waitall(requests)
        t2 = time.perf_counter()
        for bucket in self._buckets:
            bucket.unpack()
        t3 = time.perf_counter()
        self.seconds["pack"] += t1 - t0
        self.seconds["allreduce"] += t2 - t1
        self.seconds["unpack"] += t3 - t2
        self.steps += 1

    def _layout(self, params):
        key = tuple((id(p), p.shape) for p in params)
        if key == self._key:
            return
        for i, p in enumerate(params):
            if p.dtype != np.float32:
                raise TypeError(f"{self.fn}: parameter {i} must be float32, got {p.dtype}")
        _check_same((self.fn,) + tuple(p.shape for p in params), self.fn)
        limit = max(1, self.bucket_bytes // 4)
        self._buckets, current = [], []
        for p in reversed(params):
            if current and sum(q.size for q in current) + p.size > limit:
                self._buckets.append(_Bucket(current))
                current = []
            current.append(p)
        if current:
            self._buckets.append(_Bucket(current))
        self._key = key


class _Bucket:
    def __init__(self, params):
        self.params = params
        self.offsets = np.cumsum([0] + [p.size for p in params])
        self.n = int(self.offsets[-1])
        self.buffer = np.empty(self.n + 1 + len(params), np.float32)

    def pack(self, weight):
        buf, n = self.buffer, self.n
        for i, p in enumerate(self.params):
            view = buf[self.offsets[i]:self.offsets[i + 1]]
            if p.grad is None:
                view.fill(0.0)
                buf[n + 1 + i] = 0.0
                continue
            g = _host(p.grad).reshape(-1)
            if weight == 1.0:
                view[:] = g
            else:
                np.multiply(g, np.float32(weight), out=view)
            buf[n + 1 + i] = 1.0
        buf[n] = weight

    def unpack(self):
        buf, n = self.buffer, self.n
        total = buf[n]
        for i, p in enumerate(self.params):
            if buf[n + 1 + i] == 0:
                continue  # no rank had a gradient for it
            view = buf[self.offsets[i]:self.offsets[i + 1]].reshape(p.shape)
            grad = p.grad
            in_place = grad is not None and grad.device == "cpu" and \
                grad._data.flags.c_contiguous and grad._data.flags.writeable
            out = grad._data if in_place else np.empty(p.shape, np.float32)
            if total > 0:
                np.divide(view, total, out=out)
            else:
                out.fill(0.0)
            if not in_place:
                p.grad = tensor(out, device=None if p.device == "cpu" else p.device)


# ---------------------------------------------------------------- Sequential.fit
def fit_world(model, batches, steps):
    """What ``Sequential.fit`` does differently on several ranks: the no-op
    ``LOCAL`` world in one process, else a ``_FitWorld``. Joins MPI's world
    first when started by ``mpiexec`` (unless FASTNN_DISTRIBUTED=0)."""
    _join_if_launched()
    if _comm is None:
        return LOCAL
    return _FitWorld(model, batches, steps)


def _join_if_launched():
    """init() when started by mpiexec with several ranks (FASTNN_DISTRIBUTED=0: never)."""
    if not _initialized and _launched_size() > 1 and \
            os.environ.get("FASTNN_DISTRIBUTED", "1") != "0":
        init()


def writes_files():
    """False on every rank but 0: only rank 0 saves models and logs (a
    save before fit joins the world first)."""
    _join_if_launched()
    return rank() == 0


class _LocalWorld:
    """One process: fit as it is."""

    def callbacks(self, callbacks):
        return callbacks

    def verbose(self, verbose):
        return verbose

    def train_step(self, model, totals, xb, yb, weights):
        out, loss = model._train_step(xb, yb, weights)
        totals.add(out, yb, loss)

    def evaluate(self, model, x, y, batch_size):
        return model.evaluate(x, y, batch_size=batch_size)


LOCAL = _LocalWorld()


class _FitWorld(_LocalWorld):
    """``fit`` on R ranks. ``totals`` follows the protocol of the fit loop's
    running totals: ``add(out, y, loss)``, ``loss`` and ``n`` (sums over
    rows), ``sums`` (per-metric sums over rows, when ``streamed``), and
    ``outputs``/``targets`` (lists of arrays, the other metrics' inputs)."""

    def __init__(self, model, batches, steps):
        counts = _comm.allgather(steps)
        if steps is None or any(c != counts[0] for c in counts):
            raise ValueError(f"fit: every rank must run the same number of steps per epoch "
                             f"(a generator with a length, or steps_per_epoch); got {counts}")
        if hasattr(batches, "seed"):  # arrays: the shuffle order comes from rank 0's seed
            batches.seed = model._shuffle_seed = broadcast(model._shuffle_seed)
        source_seed = getattr(getattr(batches, "source", None), "seed", None)
        seeds = _comm.allgather(source_seed)
        if any(s != seeds[0] for s in seeds):
            raise ValueError(f"fit: the batch generator has a different seed on each rank "
                             f"({seeds}), so the ranks would not share its batches; pass the "
                             f"same seed= to ImageDataGenerator.flow on every rank")
        self._reducer = _GradientReducer(_BUCKET_BYTES, "fit")
        self._synced = False
        if model.built:
            self._sync(model)

    def _sync(self, model):
        broadcast_parameters(model, root=0)
        self._synced = True

    def callbacks(self, callbacks):
        """Rank 0 keeps every callback; the others leave out the ones that
        write files. All end with the agreement on stopping."""
        if rank() != 0:
            callbacks = [cb for cb in callbacks if not isinstance(
                cb, (_callbacks.ModelCheckpoint, _callbacks.CSVLogger))]
        return callbacks + [_AgreeOnStop()]

    def verbose(self, verbose):
        """Rank 0 prints; a live bar (1) becomes one line per epoch (2):
        mpiexec forwards the output through a terminal of no width."""
        if rank() != 0:
            return 0
        return 2 if verbose == 1 else verbose

    def train_step(self, model, totals, xb, yb, weights):
        """This rank's share of the global batch (xb, yb): forward, backward,
        gradients averaged weighted by the share's rows, the step; then the
        running totals of all ranks added to ``totals``."""
        n = len(xb)
        lo, hi = rank() * n // world_size(), (rank() + 1) * n // world_size()
        xl = xb[lo:hi]
        yl = None if yb is None else yb[lo:hi]
        if not self._synced:
            if not model.built:
                model.build((None,) + tuple(np.shape(xb)[1:]))
            self._sync(model)
        mine = type(totals)(model)
        if hi > lo:
            out, loss = model._train_step(xl, yl, weights, self._average)
            mine.add(out, yl, loss)
        else:  # fewer rows than ranks: this rank only takes part in the sums
            model._make_optimizer()
            model.optimizer.zero_grad()
            self._average(model.optimizer, 0)
            model.optimizer.step()
        self._add(totals, mine)

    def _average(self, optimizer, rows):
        self._reducer.average(_params_of(optimizer), rows)

    def _add(self, totals, mine):
        names = list(mine.sums)
        sums = _reduce_in_place(np.array([mine.loss, mine.n] + [mine.sums[k] for k in names],
                                         np.float64))
        totals.loss += float(sums[0])
        totals.n += int(round(sums[1]))
        for k, v in zip(names, sums[2:]):
            totals.sums[k] += float(v)
        if not mine.streamed:
            for outputs, targets in _comm.allgather((mine.outputs, mine.targets)):
                totals.outputs += outputs
                totals.targets += targets

    def evaluate(self, model, x, y, batch_size):
        """Each rank evaluates its share of the rows; the means are combined
        weighted by the rows. Metrics that are not means of per-row values
        (precision, AUC, ...) are computed on all rows by every rank."""
        if not all(name == "accuracy" for name, _ in model._metrics):
            return model.evaluate(x, y, batch_size=batch_size)
        n = len(x)
        lo, hi = rank() * n // world_size(), (rank() + 1) * n // world_size()
        keys = ["loss"] + [name for name, _ in model._metrics]
        mine = np.zeros(len(keys) + 1)
        if hi > lo:
            logs = model.evaluate(x[lo:hi], y[lo:hi], batch_size=batch_size)
            mine[:-1] = [logs[k] * (hi - lo) for k in keys]
            mine[-1] = hi - lo
        total = _reduce_in_place(mine)
        return {k: float(v / total[-1]) for k, v in zip(keys, total[:-1])}


class _AgreeOnStop(_callbacks.Callback):
    """Training stops on every rank when a callback stopped it on any."""

    def _agree(self):
        flag = np.array([int(bool(self.model.stop_training))], np.int64)
        self.model.stop_training = bool(_reduce_in_place(flag, "max")[0])

    def on_train_batch_end(self, batch, logs=None):
        self._agree()

    def on_epoch_end(self, epoch, logs=None):
        self._agree()

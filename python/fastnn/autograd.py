"""Define-by-run reverse-mode autograd: the graph nodes, grad mode and the
backward pass.

Each op that has an input requiring a gradient records a ``Node``: its input
tensors and a ``backward(grad)`` closure that returns one gradient array per
input (``None`` where the input needs none). ``backward`` walks the nodes
iteratively in reverse topological order (a node runs once all the nodes that
consume its outputs have), so graph depth is bounded by memory, not by
Python's recursion limit, and frees each node after it has run.
"""
import functools
import threading

from . import _backend


class _GradMode(threading.local):
    """Grad mode per thread, as PyTorch keeps it: a no_grad() block in one
    thread (a data loader, say) does not change what another records."""
    enabled = True


_mode = _GradMode()


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _mode.enabled


class _SetGradEnabled:
    """Context manager and decorator that sets grad mode and restores it.
    One object may be entered again while it is active (the modes to restore
    are kept on a stack)."""

    def __init__(self, mode):
        self.mode = mode
        self._saved = []

    def __enter__(self):
        self._saved.append(_mode.enabled)
        _mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _mode.enabled = self._saved.pop()
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _SetGradEnabled(mode):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn=None):
    """Ops inside record nothing: ``with fastnn.no_grad(): ...``, or as a
    decorator, ``@fastnn.no_grad()`` or ``@fastnn.no_grad``."""
    ctx = _SetGradEnabled(False)
    return ctx if fn is None else ctx(fn)


def enable_grad(fn=None):
    """Records ops again inside a ``no_grad()`` block (also a decorator)."""
    ctx = _SetGradEnabled(True)
    return ctx if fn is None else ctx(fn)


class Node:
    """One recorded op: input tensors and the closure that maps the gradient
    of its output(s) to gradients of its inputs. Multi-output ops set
    ``n_outputs`` and receive a list with ``None`` for outputs that got no
    gradient.

    The closures keep the arrays they need (inputs, outputs). In-place ops
    bump a tensor's version (shared with its views), and backward refuses
    to run a node whose inputs or outputs changed since it was recorded, as
    PyTorch does, instead of computing a wrong gradient."""
    __slots__ = ("inputs", "backward", "name", "n_outputs", "versions", "out_versions")

    def __init__(self, inputs, backward, name, n_outputs=1):
        self.inputs = inputs
        self.backward = backward
        self.name = name
        self.n_outputs = n_outputs
        self.versions = tuple(t._ver[0] for t in inputs)
        self.out_versions = ()  # (version cell, value) of each output, set by the op

    def __repr__(self):
        return f"<Node {self.name}>"


class Deferred:
    """A gradient not computed yet, offered to the node that consumes it so
    that it can fuse the op that made it into its own backward (a max pool
    right after a convolution with a ReLU). A node whose backward function
    has ``takes_deferred`` set receives it as it is and reads ``kind`` and
    ``args``; everywhere else the engine uses ``value()``."""
    __slots__ = ("value", "kind", "args")

    def __init__(self, value, kind, args):
        self.value = value
        self.kind = kind
        self.args = args


def _now(g):
    """g, computed if it is Deferred."""
    return g.value() if type(g) is Deferred else g


def run_backward(root, grad, retain_graph=False):
    """Accumulates d(root)/d(leaf) * grad into ``.grad`` of every leaf that
    requires a gradient. ``grad`` is an array of root's shape."""
    node = root._node
    if node is None:  # a leaf
        _accumulate(root, grad, set())
        return
    if node.backward is None:
        raise RuntimeError(
            "backward: the graph of this tensor has been freed by an earlier backward(); "
            "pass retain_graph=True to the first call to backward through it twice")

    # consumers of each node's outputs that lie on a path from the root
    pending = {node: 0}
    stack = [node]
    while stack:
        n = stack.pop()
        for t in n.inputs:
            p = t._node
            if p is None or not t._rg:
                continue
            if p in pending:
                pending[p] += 1
            else:
                if p.backward is None:
                    raise RuntimeError(
                        f"backward: the graph through '{p.name}' has been freed by an earlier "
                        "backward(); pass retain_graph=True to the first call")
                pending[p] = 1
                stack.append(p)

    grads = {node: [None] * node.n_outputs}
    grads[node][root._index] = grad
    adopted = set()  # ids of arrays already stored as some leaf's .grad
    ready = [node]
    while ready:
        n = ready.pop()
        _check_versions(n)
        out_grads = grads.pop(n)
        if n.n_outputs == 1:
            g = out_grads[0]
            if type(g) is Deferred and not getattr(n.backward, "takes_deferred", False):
                g = g.value()
            in_grads = n.backward(g) if g is not None else None
        elif any(g is not None for g in out_grads):
            in_grads = n.backward([_now(g) for g in out_grads])
        else:
            in_grads = None
        inputs = n.inputs
        if not retain_graph:
            n.backward = None
            n.inputs = ()
        for i, t in enumerate(inputs):
            if not t._rg:
                continue
            g = in_grads[i] if in_grads is not None else None
            p = t._node
            if p is None:
                if g is not None:
                    _accumulate(t, _now(g), adopted)
                continue
            if g is not None:
                slots = grads.get(p)
                if slots is None:
                    slots = grads[p] = [None] * p.n_outputs
                prev = slots[t._index]
                if prev is None:
                    slots[t._index] = g
                else:
                    prev, g = _now(prev), _now(g)
                    slots[t._index] = _backend.of(g).add(prev, g)
            pending[p] -= 1
            if pending[p] == 0:
                if p not in grads:
                    grads[p] = [None] * p.n_outputs
                ready.append(p)


def _check_versions(node):
    changed = any(t._ver[0] != v for t, v in zip(node.inputs, node.versions)) or any(
        cell[0] != v for cell, v in node.out_versions)
    if changed:
        raise RuntimeError(
            f"backward: a tensor that '{node.name}' saved for its gradient was changed by an "
            "in-place op (add_, mul_, +=, x[...] = ..., ...) after the op ran; change a copy "
            "instead, or do the in-place op before the forward pass")


def _accumulate(leaf, g, adopted):
    """leaf.grad += g. An array is taken over as the gradient only when it
    owns its memory and no other leaf took it this pass; otherwise copied, so
    two gradients never share memory and in-place updates stay private."""
    xp = _backend.of(g)
    shape = tuple(leaf._data.shape)
    if tuple(g.shape) != shape:  # a 0-d gradient of a 1-element leaf and the like
        g = xp.reshape(g, shape)
    if g.dtype != leaf._data.dtype:
        g = g.astype(leaf._data.dtype)
    current = leaf.grad
    if current is None:
        if id(g) in adopted or not xp.is_owned(g):
            g = xp.owned_copy(g)
        adopted.add(id(g))
        leaf.grad = leaf._from_array(g)
    else:  # the gradient arrays are owned (copied when taken over): added in place
        current._data = xp.accumulate(current._data, g)

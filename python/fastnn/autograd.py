"""Define-by-run reverse-mode autograd: the graph nodes, grad mode and the
backward pass.

Each op that has an input requiring a gradient records a ``Node``: its input
tensors and a ``backward(grad)`` closure that returns one gradient array per
input (``None`` where the input needs none). ``backward`` walks the nodes
iteratively in reverse topological order (a node runs once all the nodes that
consume its outputs have), so graph depth is bounded by memory, not by
Python's recursion limit, and frees each node after it has run.
"""
from . import _backend

_wrap = None  # tensor._wrap, set by tensor.py (which imports this module)


class _GradMode:
    enabled = True


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _GradMode.enabled


class _SetGradEnabled:
    """Context manager and decorator that sets grad mode and restores it."""

    def __init__(self, mode):
        self.mode = mode
        self.prev = None

    def __enter__(self):
        self.prev = _GradMode.enabled
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self.prev
        return False

    def __call__(self, fn):
        mode = self.mode

        def wrapper(*args, **kwargs):
            with _SetGradEnabled(mode):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


def no_grad():
    """Ops inside record nothing: ``with fastnn.no_grad(): ...`` (or as a decorator)."""
    return _SetGradEnabled(False)


def enable_grad():
    """Records ops again inside a ``no_grad()`` block."""
    return _SetGradEnabled(True)


class Node:
    """One recorded op: input tensors and the closure that maps the gradient
    of its output(s) to gradients of its inputs. Multi-output ops set
    ``n_outputs`` and receive a list with ``None`` for outputs that got no
    gradient."""
    __slots__ = ("inputs", "backward", "name", "n_outputs")

    def __init__(self, inputs, backward, name, n_outputs=1):
        self.inputs = inputs
        self.backward = backward
        self.name = name
        self.n_outputs = n_outputs

    def __repr__(self):
        return f"<Node {self.name}>"


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
        out_grads = grads.pop(n)
        if n.n_outputs == 1:
            g = out_grads[0]
            in_grads = n.backward(g) if g is not None else None
        elif any(g is not None for g in out_grads):
            in_grads = n.backward(out_grads)
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
                    _accumulate(t, g, adopted)
                continue
            if g is not None:
                slots = grads.get(p)
                if slots is None:
                    slots = grads[p] = [None] * p.n_outputs
                prev = slots[t._index]
                slots[t._index] = g if prev is None else _backend.of(g).add(prev, g)
            pending[p] -= 1
            if pending[p] == 0:
                if p not in grads:
                    grads[p] = [None] * p.n_outputs
                ready.append(p)


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
        leaf.grad = _wrap(g)
    else:
        current._data = xp.add(current._data, g)

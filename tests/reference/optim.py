"""The optimizers' updates written out plainly in float64 NumPy, after
PyTorch's documented torch.optim algorithms: the oracle of test_optim.py.

Each ``<name>_step(p, g, state, **options)`` returns the new parameter and
updates ``state`` (a dict, empty before the first step) in place. Nothing
here imports fastnn.
"""
import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def sgd_step(p, g, state, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False):
    p, g = _f64(p), _f64(g)
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if "momentum_buffer" not in state:
            buf = g.copy()  # the first step: the gradient itself, no dampening
        else:
            buf = momentum * state["momentum_buffer"] + (1 - dampening) * g
        state["momentum_buffer"] = buf
        g = g + momentum * buf if nesterov else buf
    return p - lr * g


def adagrad_step(p, g, state, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
    p, g = _f64(p), _f64(g)
    if not state:
        state["step"] = 0
        state["sum"] = np.full(p.shape, float(np.float32(initial_accumulator_value)))
    state["step"] += 1
    if weight_decay != 0:
        g = g + weight_decay * p
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    state["sum"] = state["sum"] + g * g
    return p - clr * g / (np.sqrt(state["sum"]) + eps)


def rmsprop_step(p, g, state, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
    p, g = _f64(p), _f64(g)
    if not state:
        state.update(step=0, square_avg=np.zeros(p.shape), momentum_buffer=np.zeros(p.shape),
                     grad_avg=np.zeros(p.shape))
    state["step"] += 1
    if weight_decay != 0:
        g = g + weight_decay * p
    sq = alpha * state["square_avg"] + (1 - alpha) * g * g
    state["square_avg"] = sq
    if centered:
        gavg = alpha * state["grad_avg"] + (1 - alpha) * g
        state["grad_avg"] = gavg
        avg = np.sqrt(sq - gavg * gavg) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum * state["momentum_buffer"] + g / avg
        state["momentum_buffer"] = buf
        return p - lr * buf
    return p - lr * g / avg


def adam_step(p, g, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
              amsgrad=False, decoupled=False):
    """Adam; with decoupled, AdamW (the decay applied to p, not the gradient)."""
    p, g = _f64(p), _f64(g)
    beta1, beta2 = betas
    if not state:
        state.update(step=0, exp_avg=np.zeros(p.shape), exp_avg_sq=np.zeros(p.shape),
                     max_exp_avg_sq=np.zeros(p.shape))
    state["step"] += 1
    t = state["step"]
    if weight_decay != 0:
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = beta1 * state["exp_avg"] + (1 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g
    state["exp_avg"], state["exp_avg_sq"] = m, v
    if amsgrad:
        state["max_exp_avg_sq"] = np.maximum(state["max_exp_avg_sq"], v)
        v = state["max_exp_avg_sq"]
    # PyTorch's form: eps is added to the bias-corrected sqrt(v)
    denom = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + eps
    return p - lr / (1 - beta1 ** t) * m / denom

STEPS = {"SGD": sgd_step, "Adagrad": adagrad_step, "RMSprop": rmsprop_step, "Adam": adam_step}

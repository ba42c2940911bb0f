"""Learning-rate schedules with PyTorch's semantics (torch.optim.lr_scheduler).

A schedule changes ``group["lr"]`` of an optimizer's parameter groups; call
``step()`` once per epoch after the epoch's ``optimizer.step()`` calls
(``ReduceLROnPlateau.step(metric)`` takes the monitored value)::

    opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
    sched = fastnn.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train(...)
        sched.step()

Construction sets each group's "initial_lr" (the base rate) and performs
step 0, which leaves the rates as they are. As in PyTorch, the schedules
are chainable: each step scales the current rate, so a change made to
``group["lr"]`` by hand carries on.
"""
import math
import numbers

from .. import _checks
from .optimizer import Optimizer

__all__ = ["CosineAnnealingLR", "ExponentialLR", "LRScheduler", "ReduceLROnPlateau", "StepLR"]


def _number(value, name, fn):
    return _checks.number(value, name, fn)


def _positive_int(value, name, fn):
    return _checks.integer(value, name, fn, low=1)


def _optimizer(optimizer, fn):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{fn}: argument 'optimizer' must be a fastnn.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    return optimizer


class _State:
    """What every schedule keeps: the rates its last step set, and its state
    (everything but the optimizer) as a dict."""

    def get_last_lr(self):
        """The rates the last step set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer, as a dict."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict: argument 'state_dict' must "
                            f"be a dict, got {type(state_dict).__name__}")
        self.__dict__.update(state_dict)


class LRScheduler(_State):
    """The base of the epoch-indexed schedules: subclasses define ``get_lr()``,
    the rates for epoch ``last_epoch`` from the current ones."""

    def __init__(self, optimizer, last_epoch=-1):
        fn = type(self).__name__
        self.optimizer = _optimizer(optimizer, fn)
        if isinstance(last_epoch, bool) or not isinstance(last_epoch, numbers.Integral) \
                or last_epoch < -1:
            raise ValueError(f"{fn}: argument 'last_epoch' must be an int >= -1, got "
                             f"{last_epoch!r}")
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(f"{fn}: resuming at last_epoch={last_epoch} needs "
                                     f"'initial_lr' in param_groups[{i}] (load the optimizer's "
                                     "state_dict first)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self._initial = True
        try:
            self.step()
        finally:
            self._initial = False

    def get_lr(self):
        raise NotImplementedError

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self):
        """Advances one epoch and sets the groups' learning rates."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._current()



class StepLR(LRScheduler):
    """Multiplies the rates by gamma every step_size epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = _positive_int(step_size, "step_size", "StepLR")
        self.gamma = _number(gamma, "gamma", "StepLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class ExponentialLR(LRScheduler):
    """Multiplies the rates by gamma every epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = _number(gamma, "gamma", "ExponentialLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._initial:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class CosineAnnealingLR(LRScheduler):
    """eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, in
    PyTorch's recursive form (which keeps a hand-made change of the rate and,
    past T_max, goes back up: a period of 2 T_max)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = _positive_int(T_max, "T_max", "CosineAnnealingLR")
        self.eta_min = _number(eta_min, "eta_min", "CosineAnnealingLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return self._current()
        if (t - 1 - T) % (2 * T) == 0:  # the bottom of a period, where the ratio below is 0/0
            return [lr + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                    for lr, base in zip(self._current(), self.base_lrs)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - lo) + lo for lr in self._current()]


class ReduceLROnPlateau(_State):
    """Multiplies the rates by ``factor`` when the monitored value has not
    improved for more than ``patience`` epochs (torch.optim.lr_scheduler's
    ReduceLROnPlateau): ``step(value)`` once per epoch.

    Improvement in mode "min" is value < best * (1 - threshold) ("rel") or
    value < best - threshold ("abs"); mode "max" mirrors it. After a
    reduction, ``cooldown`` epochs pass before bad epochs count again. A
    rate never goes below ``min_lr`` (a number, or one per group), and a
    change smaller than ``eps`` is not made."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        fn = "ReduceLROnPlateau"
        self.optimizer = _optimizer(optimizer, fn)
        if mode not in ("min", "max"):
            raise ValueError(f"{fn}: argument 'mode' must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"{fn}: argument 'threshold_mode' must be 'rel' or 'abs', got "
                             f"{threshold_mode!r}")
        self.factor = _number(factor, "factor", fn)
        if not 0.0 <= self.factor < 1.0:
            raise ValueError(f"{fn}: argument 'factor' must be in [0, 1), got {factor}")
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{fn}: argument '{name}' must be an int >= 0, got {value!r}")
        groups = optimizer.param_groups
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(groups):
                raise ValueError(f"{fn}: argument 'min_lr' must have one entry per parameter "
                                 f"group ({len(groups)}), got {len(min_lr)}")
            self.min_lrs = [_number(v, "min_lr", fn) for v in min_lr]
        else:
            self.min_lrs = [_number(min_lr, "min_lr", fn)] * len(groups)
        self.mode = mode
        self.threshold = _number(threshold, "threshold", fn)
        self.threshold_mode = threshold_mode
        self.patience = int(patience)
        self.cooldown = int(cooldown)
        self.eps = _number(eps, "eps", fn)
        self.last_epoch = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [group["lr"] for group in groups]

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def is_better(self, a, best):
        if self.mode == "min":
            bound = best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return a < bound
        bound = best * (1.0 + self.threshold) if self.threshold_mode == "rel" \
            else best + self.threshold
        return a > bound

    def step(self, metrics):
        """Takes this epoch's monitored value (a number or a 1-element tensor)."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, floor)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

"""fastnn.optim.lr_scheduler: the schedules' rates epoch by epoch against
their closed forms and hand-worked cases, PyTorch's chainable behaviour
(a hand-made change carries on), state_dict, and bad arguments."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.optim import lr_scheduler as S


def sgd(lr=1.0, groups=1):
    ps = [fastnn.tensor(np.zeros(2, np.float32), requires_grad=True) for _ in range(groups)]
    if groups == 1:
        return optim.SGD(ps, lr=lr)
    return optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)


def rates(sched, epochs):
    """The rate of each group at epochs 0 .. epochs-1 (construction is epoch 0)."""
    out = [sched.get_last_lr()]
    for _ in range(epochs - 1):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr())
    return np.array(out)


def test_step_lr_multiplies_every_step_size_epochs():
    opt = sgd(1.0, groups=2)
    got = rates(S.StepLR(opt, step_size=3, gamma=0.5), 10)
    e = np.arange(10)
    np.testing.assert_allclose(got, np.stack([0.5 ** (e // 3), 2 * 0.5 ** (e // 3)], 1),
                               rtol=1e-15)
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 2.0]
    assert opt.param_groups[0]["lr"] == got[-1, 0]


def test_exponential_lr_multiplies_every_epoch():
    got = rates(S.ExponentialLR(sgd(0.1), gamma=0.9), 8)
    np.testing.assert_allclose(got[:, 0], 0.1 * 0.9 ** np.arange(8), rtol=1e-14)


@pytest.mark.parametrize("eta_min", [0.0, 0.1])
def test_cosine_annealing_follows_its_closed_form_over_several_periods(eta_min):
    T = 10
    got = rates(S.CosineAnnealingLR(sgd(1.0), T_max=T, eta_min=eta_min), 3 * T + 1)
    e = np.arange(3 * T + 1)
    want = eta_min + (1 - eta_min) * (1 + np.cos(np.pi * e / T)) / 2
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-12, atol=1e-15)
    assert got[T, 0] == pytest.approx(eta_min, abs=1e-15)


def test_schedules_chain_from_a_rate_changed_by_hand():
    opt = sgd(1.0)
    sched = S.ExponentialLR(opt, gamma=0.5)
    sched.step()
    opt.param_groups[0]["lr"] = 3.0
    sched.step()
    assert sched.get_last_lr() == [1.5]


def test_resuming_needs_initial_lr_and_continues_from_the_current_rate():
    opt = sgd(1.0)
    with pytest.raises(ValueError, match="initial_lr"):
        S.StepLR(opt, step_size=2, last_epoch=4)
    opt.param_groups[0]["initial_lr"] = 1.0
    sched = S.CosineAnnealingLR(opt, T_max=8, last_epoch=3)  # construction is epoch 4
    assert sched.last_epoch == 4 and sched.get_last_lr() == [1.0]
    sched.step()  # PyTorch's recursive step from the current rate
    ratio = (1 + math.cos(math.pi * 5 / 8)) / (1 + math.cos(math.pi * 4 / 8))
    assert sched.get_last_lr()[0] == pytest.approx(ratio, rel=1e-12)


def test_scheduler_state_dict_round_trip():
    opt = sgd(1.0)
    sched = S.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        sched.step()
    saved = sched.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 3
    other = S.StepLR(sgd(1.0), step_size=5, gamma=0.5)
    other.load_state_dict(saved)
    assert other.step_size == 2 and other.last_epoch == 3 and other.base_lrs == [1.0]


def test_the_schedule_reaches_the_optimizer_step():
    p = fastnn.tensor(np.zeros(1, np.float32), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        p.grad = fastnn.tensor(np.ones(1, np.float32))
        before = p.numpy().copy()
        opt.step()
        moves.append(float((before - p.numpy())[0]))
        sched.step()
    assert moves == [1.0, 0.5, 0.25]


def test_reduce_on_plateau_with_patience_cooldown_and_a_floor():
    opt = sgd(1.0)
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.1)
    got = []
    for value in [10] + [9] * 20:
        sched.step(value)
        got.append(sched.get_last_lr()[0])
    # worked by hand: best 9 from epoch 2; 3 bad epochs (> patience 2) cut
    # the rate, then one cooldown epoch; the floor stops it at 0.1
    want = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125, 0.125, 0.125,
            0.1, 0.1, 0.1, 0.1, 0.1]
    assert got == want


def test_reduce_on_plateau_max_mode_with_an_absolute_threshold():
    opt = sgd(1.0, groups=2)
    sched = S.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, threshold=0.5,
                                threshold_mode="abs", min_lr=[0.0, 1.0])
    sched.step(1.0)   # better than -inf
    sched.step(1.4)   # not above 1.0 + 0.5: bad, > patience 0: cut
    assert sched.get_last_lr() == pytest.approx([0.1, 1.0])  # the second group's floor is 1
    sched.step(2.0)   # 2.0 > 1.5: better
    assert sched.best == 2.0 and sched.get_last_lr()[0] == pytest.approx(0.1)


def test_reduce_on_plateau_takes_a_one_element_tensor():
    sched = S.ReduceLROnPlateau(sgd(1.0), patience=0)
    sched.step(fastnn.tensor(np.float32(3.0)))
    assert sched.best == 3.0


@pytest.mark.parametrize("make,error,match", [
    (lambda o: S.StepLR(o, step_size=0), ValueError, "'step_size' must be >= 1"),
    (lambda o: S.StepLR(o, step_size=2.5), TypeError, "'step_size' must be an int"),
    (lambda o: S.StepLR("sgd", step_size=2), TypeError, "'optimizer'"),
    (lambda o: S.ExponentialLR(o, gamma="0.9"), TypeError, "'gamma'"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), ValueError, "'T_max'"),
    (lambda o: S.StepLR(o, step_size=2, last_epoch=-2), ValueError, "'last_epoch'"),
    (lambda o: S.ReduceLROnPlateau(o, mode="lowest"), ValueError, "'mode'"),
    (lambda o: S.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError, "'threshold_mode'"),
    (lambda o: S.ReduceLROnPlateau(o, factor=1.0), ValueError, "'factor'"),
    (lambda o: S.ReduceLROnPlateau(o, patience=-1), ValueError, "'patience'"),
    (lambda o: S.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]), ValueError, "'min_lr'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_scheduler_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make(sgd(1.0))

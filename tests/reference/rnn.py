"""References for the LSTM and GRU layers over whole sequences, in float64.

Layouts are Keras's (docs/api.md, Conventions): x (B, T, I) batch first, states
(B, H), kernel w_x (I, G*H), recurrent kernel w_h (H, G*H), gates side by
side along the last axis: LSTM [i, f, g, o] (G = 4), GRU [z, r, h~] (G = 3).

    LSTM   i = s(x Wi + h Ui + bi)  f = s(x Wf + h Uf + bf)
           g = tanh(x Wg + h Ug + bg)  o = s(x Wo + h Uo + bo)
           c' = f c + i g,  h' = o tanh(c')                        b (4H,)
    GRU    z = s(x Wz + h Uz + bz)  r = s(x Wr + h Ur + br)
           h~ = tanh(x Wh + (r h) Uh + bh)
           h' = (1 - z) h + z h~                                    b (3H,)
    GRU, reset_after (cuDNN's form): h~ = tanh(x Wh + bxh + r (h Uh + bhh)),
           b (2, 3H) = [input bias, recurrent bias]

``lstm_forward(x, h0, c0, w_x, w_h, b) -> ((out, h, c), cache)`` and
``lstm_backward(dout, dh, dc, cache) -> (dx, dh0, dc0, dw_x, dw_h, db)``;
``gru_forward(x, h0, w_x, w_h, b, reset_after) -> ((out, h), cache)`` and
``gru_backward(dout, dh, cache) -> (dx, dh0, dw_x, dw_h, db)``. dout is the
gradient of out (B, T, H); dh, dc those of the final states (None: zero).
One step at a time, as the equations read. Nothing here imports fastnn.
"""
import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _zeros_if_none(a, shape):
    return np.zeros(shape) if a is None else _f64(a)


# ---------------------------------------------------------------- LSTM
def lstm_forward(x, h0, c0, w_x, w_h, b):
    x, w_x, w_h, b = _f64(x), _f64(w_x), _f64(w_h), _f64(b)
    B, T, _ = x.shape
    H = w_h.shape[0]
    h = _zeros_if_none(h0, (B, H))
    c = _zeros_if_none(c0, (B, H))
    out = np.zeros((B, T, H))
    steps = []
    for t in range(T):
        a = x[:, t] @ w_x + h @ w_h + b
        i = sigmoid(a[:, :H])
        f = sigmoid(a[:, H:2 * H])
        g = np.tanh(a[:, 2 * H:3 * H])
        o = sigmoid(a[:, 3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        steps.append((h, c, i, f, g, o, c_new))
        h, c = h_new, c_new
        out[:, t] = h
    return (out, h, c), (x, w_x, w_h, steps)


def lstm_backward(dout, dh, dc, cache):
    x, w_x, w_h, steps = cache
    B, T, _ = x.shape
    H = w_h.shape[0]
    dout = np.zeros((B, T, H)) if dout is None else _f64(dout)
    dh_next = _zeros_if_none(dh, (B, H))
    dc_next = _zeros_if_none(dc, (B, H))
    dx = np.zeros(x.shape)
    dw_x, dw_h, db = np.zeros(w_x.shape), np.zeros(w_h.shape), np.zeros(4 * H)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, c = steps[t]
        d_h = dout[:, t] + dh_next
        tc = np.tanh(c)
        d_c = dc_next + d_h * o * (1 - tc * tc)
        da = np.concatenate([d_c * g * i * (1 - i),
                             d_c * c_prev * f * (1 - f),
                             d_c * i * (1 - g * g),
                             d_h * tc * o * (1 - o)], axis=1)
        dx[:, t] = da @ w_x.T
        dw_x += x[:, t].T @ da
        dw_h += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = da @ w_h.T
        dc_next = d_c * f
    return dx, dh_next, dc_next, dw_x, dw_h, db


# ---------------------------------------------------------------- GRU
def gru_forward(x, h0, w_x, w_h, b, reset_after=False):
    x, w_x, w_h, b = _f64(x), _f64(w_x), _f64(w_h), _f64(b)
    B, T, _ = x.shape
    H = w_h.shape[0]
    bx, bh = (b[0], b[1]) if reset_after else (b, np.zeros(3 * H))
    h = _zeros_if_none(h0, (B, H))
    out = np.zeros((B, T, H))
    steps = []
    for t in range(T):
        ax = x[:, t] @ w_x + bx
        ah = h @ w_h + bh
        z = sigmoid(ax[:, :H] + ah[:, :H])
        r = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        if reset_after:
            n = ah[:, 2 * H:]  # the recurrent part of the candidate, bias included
            hc = np.tanh(ax[:, 2 * H:] + r * n)
        else:
            n = None
            hc = np.tanh(ax[:, 2 * H:] + (r * h) @ w_h[:, 2 * H:])
        h_new = (1 - z) * h + z * hc
        steps.append((h, z, r, hc, n))
        h = h_new
        out[:, t] = h
    return (out, h), (x, w_x, w_h, reset_after, steps)


def gru_backward(dout, dh, cache):
    x, w_x, w_h, reset_after, steps = cache
    B, T, _ = x.shape
    H = w_h.shape[0]
    dout = np.zeros((B, T, H)) if dout is None else _f64(dout)
    dh_next = _zeros_if_none(dh, (B, H))
    dx = np.zeros(x.shape)
    dw_x, dw_h = np.zeros(w_x.shape), np.zeros(w_h.shape)
    db = np.zeros((2, 3 * H) if reset_after else 3 * H)
    uz_ur, uh = w_h[:, :2 * H], w_h[:, 2 * H:]
    for t in reversed(range(T)):
        h_prev, z, r, hc, n = steps[t]
        d_h = dout[:, t] + dh_next
        da_z = d_h * (hc - h_prev) * z * (1 - z)
        da_hc = d_h * z * (1 - hc * hc)  # the candidate's pre-activation
        dh_prev = d_h * (1 - z)
        if reset_after:
            dn = da_hc * r
            da_r = da_hc * n * r * (1 - r)
            dah = np.concatenate([da_z, da_r, dn], axis=1)  # the recurrent product's gradient
            dw_h += h_prev.T @ dah
            dh_prev += dah @ w_h.T
            db[1] += dah.sum(axis=0)
        else:
            d_rh = da_hc @ uh.T
            da_r = d_rh * h_prev * r * (1 - r)
            dh_prev += d_rh * r
            dzr = np.concatenate([da_z, da_r], axis=1)
            dh_prev += dzr @ uz_ur.T
            dw_h[:, :2 * H] += h_prev.T @ dzr
            dw_h[:, 2 * H:] += (r * h_prev).T @ da_hc
        dax = np.concatenate([da_z, da_r, da_hc], axis=1)  # the input side's gradient
        dx[:, t] = dax @ w_x.T
        dw_x += x[:, t].T @ dax
        if reset_after:
            db[0] += dax.sum(axis=0)
        else:
            db += dax.sum(axis=0)
        dh_next = dh_prev
    return dx, dh_next, dw_x, dw_h, db


# ---------------------------------------------------------------- single steps
def lstm_cell_forward(x, h, c, w_x, w_h, b):
    """One step: x (B, I) -> ((h', c'), cache)."""
    (out, h1, c1), cache = lstm_forward(_f64(x)[:, None], h, c, w_x, w_h, b)
    return (h1, c1), cache


def lstm_cell_backward(dh, dc, cache):
    dx, dh0, dc0, dw_x, dw_h, db = lstm_backward(None, dh, dc, cache)
    return dx[:, 0], dh0, dc0, dw_x, dw_h, db


def gru_cell_forward(x, h, w_x, w_h, b, reset_after=False):
    (out, h1), cache = gru_forward(_f64(x)[:, None], h, w_x, w_h, b, reset_after)
    return h1, cache


def gru_cell_backward(dh, cache):
    dx, dh0, dw_x, dw_h, db = gru_backward(None, dh, cache)
    return (dx[:, 0], dh0, dw_x, dw_h, db)

"""One time step of each recurrent cell: forward, and backward through that step.

These are pure functions in the style of CS231n's ``rnn_layers.py``: ``*_forward`` returns
the new state and a ``cache`` tuple with everything backward needs; ``*_backward`` takes
the gradient of the loss with respect to the step's outputs and that cache, and returns
the gradients with respect to the step's inputs. Nothing is stored anywhere else.

Shapes: ``B`` batch, ``I`` input features, ``H`` hidden units, ``P`` the size of ``h``
(``P = H`` except for an LSTM with ``proj_size``); weights as in PyTorch's ``state_dict``.

The input projection is not computed here. A layer computes it for every time step with
one matrix product (``x W_ih^T`` over the whole sequence) and hands each step its row::

    gx_t = x_t W_ih^T + b_ih (+ the parts of b_hh that are simply added)     (B, G*H)

The biases ``b_ih`` and ``b_hh`` are both just added to the pre-activation, so the layer
folds ``b_hh`` into ``gx`` too -- except for the GRU's ``b_hn`` in PyTorch's form, which sits
inside ``r * (W_hn h + b_hn)`` and is passed to the cell. Likewise the parameter gradients of
a step are outer products (``dW_hh += da^T h_prev``, ``dW_ih += da^T x_t``, ``db += sum_b da``);
backward returns ``da`` and the layer sums those products over all steps with one matrix
product. ``docs/equations.md`` derives every line.

The cell updates *from the pre-activations* (:func:`rnn_update`, :func:`gru_gates`,
:func:`gru_candidate`, :func:`gru_blend`, :func:`lstm_update`, :func:`lstm_state`) are the one
copy of the cell maths: the quantised reference (:mod:`rnncore.quant.reference`, whose
pre-activations come from int8 products) and :class:`rnncore.nn.extended.ExtendedRecurrent`
call them too. They perform the float operations in the order docs/q8-contract.md fixes for the
C kernels (e.g. ``(1 - z) * n + z * h``), so that the q8 reference can follow the C core bit
for bit. Their activations are :mod:`rnncore.nn.functional`'s unless an :class:`Activations`
is passed: the C core's own tests substitute its fast float32 approximations that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rnncore.nn import functional as F


@dataclass(frozen=True)
class Activations:
    """The activation functions a cell update applies (each ``(B, n) -> (B, n)``, same dtype)."""

    sigmoid: Callable[[np.ndarray], np.ndarray] = F.sigmoid
    tanh: Callable[[np.ndarray], np.ndarray] = F.tanh
    relu: Callable[[np.ndarray], np.ndarray] = F.relu


#: :mod:`rnncore.nn.functional`'s activations, the default of every update
FUNCTIONAL = Activations()

# ---------------------------------------------------------------------------------------
# Elman RNN:  h_t = phi(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  phi = tanh or relu
# ---------------------------------------------------------------------------------------


def rnn_update(a: np.ndarray, nonlinearity: str = "tanh", act: Activations = FUNCTIONAL) -> np.ndarray:
    """The Elman update ``h_t = phi(a_t)`` from the pre-activation.

    Parameters
    ----------
    a : (B, H) pre-activation ``gx_t + h_{t-1} W_hh^T``
    nonlinearity : ``"tanh"`` or ``"relu"``
    act : the activation functions

    Returns
    -------
    h : (B, H)
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    h = act.tanh(a) if nonlinearity == "tanh" else act.relu(a)  # (B, H)  h_t = phi(a_t)
    return h


def rnn_cell_forward(
    gx: np.ndarray, h_prev: np.ndarray, w_hh: np.ndarray, nonlinearity: str = "tanh"
) -> tuple[np.ndarray, tuple]:
    """One step of the Elman RNN.

    Equations::

        a_t = gx_t + h_{t-1} W_hh^T          (B, H)   gx_t = x_t W_ih^T + b_ih + b_hh
        h_t = phi(a_t)                       (B, H)   phi = tanh or relu

    Parameters
    ----------
    gx : (B, H) input projection of this step, both biases included
    h_prev : (B, H) previous hidden state ``h_{t-1}``
    w_hh : (H, H) ``weight_hh``
    nonlinearity : ``"tanh"`` or ``"relu"``

    Returns
    -------
    h : (B, H) new hidden state
    cache : ``(h, nonlinearity)``
    """
    a = gx + h_prev @ w_hh.T                                   # (B, H)  a_t = gx_t + h_{t-1} W_hh^T
    h = rnn_update(a, nonlinearity)                            # (B, H)  h_t = phi(a_t)
    return h, (h, nonlinearity)


def rnn_cell_backward(dh: np.ndarray, cache: tuple, w_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward through one RNN step.

    Equations::

        da      = dh * phi'(a)     (B, H)   tanh' = 1 - h^2,  relu' = [h > 0]
        dh_prev = da W_hh          (B, H)

    and for the layer to sum over steps: ``dW_hh += da^T h_prev``, ``dW_ih += da^T x_t``,
    ``db_ih = db_hh += sum_b da``.

    Parameters
    ----------
    dh : (B, H) gradient with respect to ``h_t`` (from the output and from step t+1)
    cache : from :func:`rnn_cell_forward`
    w_hh : (H, H)

    Returns
    -------
    da : (B, H) gradient with respect to the pre-activation ``a_t`` (= w.r.t. ``gx_t``)
    dh_prev : (B, H) gradient with respect to ``h_{t-1}``
    """
    h, nonlinearity = cache
    da = dh * (1 - h * h) if nonlinearity == "tanh" else dh * (h > 0)   # (B, H)  da = dh * phi'(a)
    dh_prev = da @ w_hh                                        # (B, H)  dh_{t-1} = da W_hh
    return da, dh_prev


# ---------------------------------------------------------------------------------------
# GRU, gate order r, z, n (PyTorch)
# ---------------------------------------------------------------------------------------


def gru_gates(a_rz: np.ndarray, act: Activations = FUNCTIONAL) -> np.ndarray:
    """The reset and update gates ``[r | z] = sigmoid([a_r | a_z])``.

    Parameters
    ----------
    a_rz : (B, 2H) pre-activations ``gx_{r,z} + h_{t-1} W_h{r,z}^T``
    act : the activation functions

    Returns
    -------
    rz : (B, 2H) ``[r | z]``
    """
    rz = act.sigmoid(a_rz)                                     # (B, 2H)  [r | z]
    return rz


def gru_candidate(gx_n: np.ndarray, gh_n: np.ndarray, act: Activations = FUNCTIONAL) -> np.ndarray:
    """The candidate ``n_t = tanh(gx_n + gh_n)``.

    Parameters
    ----------
    gx_n : (B, H) the input part of the n gate (``x_t W_in^T + b_in``, + ``b_hn`` in the
        original form)
    gh_n : (B, H) the recurrent part, reset gate applied: ``r * (h W_hn^T + b_hn)``
        (``reset_after=True``) or ``(r * h) W_hn^T`` (``reset_after=False``)
    act : the activation functions

    Returns
    -------
    n : (B, H)
    """
    n = act.tanh(gx_n + gh_n)                                  # (B, H)
    return n


def gru_blend(n: np.ndarray, z: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
    """The GRU state ``h_t = (1 - z_t) * n_t + z_t * h_{t-1}`` (the C kernels' operation order).

    Parameters
    ----------
    n, z, h_prev : (B, H) candidate, update gate, previous state

    Returns
    -------
    h : (B, H)
    """
    h = (1 - z) * n + z * h_prev                               # (B, H)
    return h


def gru_cell_forward(
    gx: np.ndarray,
    h_prev: np.ndarray,
    w_hh: np.ndarray,
    b_hn: np.ndarray | None = None,
    reset_after: bool = True,
) -> tuple[np.ndarray, tuple]:
    """One step of the GRU, in PyTorch's form (``reset_after=True``) or the original one.

    Equations (``gx_t = [gx_r | gx_z | gx_n]``, each (B, H); ``W_hh = [W_hr; W_hz; W_hn]``)::

        r_t = sigmoid(gx_r + h_{t-1} W_hr^T)                     (B, H)  reset gate
        z_t = sigmoid(gx_z + h_{t-1} W_hz^T)                     (B, H)  update gate
        reset_after=True  (PyTorch, ONNX linear_before_reset=1, Keras reset_after=True):
          hn_t = h_{t-1} W_hn^T + b_hn                          (B, H)
          n_t  = tanh(gx_n + r_t * hn_t)                        (B, H)  candidate
        reset_after=False (original Cho et al. form, ONNX default):
          rh_t = r_t * h_{t-1}                                  (B, H)
          n_t  = tanh(gx_n + rh_t W_hn^T)                       (B, H)  (b_hn is in gx_n)
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}  = n_t + z_t * (h_{t-1} - n_t)

    Here ``gx_r``, ``gx_z`` include ``b_ir + b_hr`` and ``b_iz + b_hz``; ``gx_n`` includes
    ``b_in`` (and, for ``reset_after=False``, ``b_hn``).

    Parameters
    ----------
    gx : (B, 3H) input projection of this step
    h_prev : (B, H)
    w_hh : (3H, H) ``weight_hh``
    b_hn : (H,) or None, the ``n`` part of ``bias_hh`` (used only when ``reset_after``)
    reset_after : which form

    Returns
    -------
    h : (B, H)
    cache : ``(h_prev, rz, n, hn_or_rh, reset_after)``; ``rz`` is (B, 2H) = ``[r | z]``
    """
    H = h_prev.shape[1]
    if reset_after:
        gh = h_prev @ w_hh.T                                   # (B, 3H)  [W_hr h | W_hz h | W_hn h]
        hn = gh[:, 2 * H:] if b_hn is None else gh[:, 2 * H:] + b_hn
        rz = gru_gates(gx[:, : 2 * H] + gh[:, : 2 * H])        # (B, 2H)  [r | z]
        n = gru_candidate(gx[:, 2 * H:], rz[:, :H] * hn)       # (B, H)
        extra = hn
    else:
        rz = gru_gates(gx[:, : 2 * H] + h_prev @ w_hh[: 2 * H].T)  # (B, 2H)  [r | z]
        rh = rz[:, :H] * h_prev                                # (B, H)
        n = gru_candidate(gx[:, 2 * H:], rh @ w_hh[2 * H:].T)  # (B, H)
        extra = rh
    h = gru_blend(n, rz[:, H:], h_prev)                        # (B, H)
    return h, (h_prev, rz, n, extra, reset_after)


def gru_cell_backward(
    dh: np.ndarray, cache: tuple, w_hh: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through one GRU step.

    Equations (``a_r, a_z, a_n`` are the pre-activations of ``r, z, n``)::

        dn      = dh * (1 - z)                   (B, H)
        dz      = dh * (h_prev - n)
        dh_prev = dh * z                         (direct path, more is added below)
        da_n    = dn * (1 - n^2)
        reset_after=True:
          dhn   = da_n * r                       gradient w.r.t. hn = h_prev W_hn^T + b_hn
          dr    = da_n * hn
          dh_prev += [da_r | da_z | dhn] W_hh
        reset_after=False:
          drh   = da_n W_hn                      gradient w.r.t. rh = r * h_prev
          dr    = drh * h_prev
          dh_prev += drh * r + [da_r | da_z] [W_hr; W_hz]
        da_r    = dr * r (1 - r)
        da_z    = dz * z (1 - z)

    Parameter gradients, summed by the layer: ``dW_ih += dgx^T x_t``, ``db_ih += sum_b dgx``,
    ``db_hh += sum_b dgh``; ``dW_hr, dW_hz += dgh_{r,z}^T h_prev`` and ``dW_hn += dgh_n^T h_prev``
    (``reset_after=True``) or ``dgh_n^T rh`` (``reset_after=False``).

    Parameters
    ----------
    dh : (B, H) gradient with respect to ``h_t``
    cache : from :func:`gru_cell_forward`
    w_hh : (3H, H)

    Returns
    -------
    dgx : (B, 3H) ``[da_r | da_z | da_n]``, gradient w.r.t. the input projection ``gx_t``
    dgh : (B, 3H) gradient w.r.t. the recurrent pre-activation ``[W_hr h | W_hz h | W_hn (.) + b_hn]``:
          ``[da_r | da_z | dhn]`` (reset_after) or ``[da_r | da_z | da_n]`` (original form)
    dh_prev : (B, H)
    """
    h_prev, rz, n, extra, reset_after = cache
    H = h_prev.shape[1]
    r, z = rz[:, :H], rz[:, H:]                                # (B, H) each
    dn = dh * (1 - z)                                          # (B, H)  h = (1 - z) n + z h_prev
    dz = dh * (h_prev - n)                                     # (B, H)
    da_n = dn * (1 - n * n)                                    # (B, H)  through n = tanh(a_n)
    drz = np.empty_like(rz)                                    # (B, 2H) [dr | dz]
    if reset_after:
        drz[:, :H] = da_n * extra                              # dr = da_n * hn
    else:
        drh = da_n @ w_hh[2 * H:]                              # (B, H)  drh = da_n W_hn
        drz[:, :H] = drh * h_prev                              # dr = drh * h_prev
    drz[:, H:] = dz
    da_rz = drz * rz * (1 - rz)                                # [da_r | da_z]
    dgx = np.concatenate([da_rz, da_n], axis=1)                # (B, 3H)
    if reset_after:
        dgh = np.concatenate([da_rz, da_n * r], axis=1)       # (B, 3H)  [da_r | da_z | dhn]
        dh_prev = dh * z + dgh @ w_hh                          # (B, H)
    else:
        dgh = dgx                                              # (B, 3H)  [da_r | da_z | da_n]
        dh_prev = dh * z + drh * r + da_rz @ w_hh[: 2 * H]     # (B, H)
    return dgx, dgh, dh_prev


# ---------------------------------------------------------------------------------------
# LSTM, gate order i, f, g, o (PyTorch), optional projection h = (o * tanh(c)) W_hr^T
# ---------------------------------------------------------------------------------------


def lstm_state(i: np.ndarray, f: np.ndarray, g: np.ndarray, c_prev: np.ndarray) -> np.ndarray:
    """The cell state ``c_t = f_t * c_{t-1} + i_t * g_t``; all (B, H)."""
    c = f * c_prev + i * g                                     # (B, H)
    return c


def lstm_update(a: np.ndarray, c_prev: np.ndarray,
                act: Activations = FUNCTIONAL) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The LSTM update from the pre-activations (before any projection).

    Equations::

        [i | f | g | o] = [sigmoid | sigmoid | tanh | sigmoid](a)     (B, 4H)
        c_t = f * c_{t-1} + i * g;   m_t = o * tanh(c_t)              (B, H)

    Parameters
    ----------
    a : (B, 4H) pre-activations ``gx_t + h_{t-1} W_hh^T``
    c_prev : (B, H)
    act : the activation functions

    Returns
    -------
    gates : (B, 4H) ``[i | f | g | o]``;  c : (B, H);  tanh_c : (B, H);  m : (B, H)
    """
    H = c_prev.shape[1]
    gates = act.sigmoid(a)                                     # i, f, o (g is overwritten)
    gates[:, 2 * H: 3 * H] = act.tanh(a[:, 2 * H: 3 * H])      # g
    i, f, g, o = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H: 3 * H], gates[:, 3 * H:]
    c = lstm_state(i, f, g, c_prev)                            # (B, H)
    tanh_c = act.tanh(c)                                       # (B, H)
    m = o * tanh_c                                             # (B, H)
    return gates, c, tanh_c, m


def lstm_cell_forward(
    gx: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    w_hh: np.ndarray,
    w_hr: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One step of the LSTM (with PyTorch's optional projection ``proj_size``).

    Equations (``gx_t`` includes ``b_ih + b_hh``)::

        a_t = gx_t + h_{t-1} W_hh^T               (B, 4H)  = [a_i | a_f | a_g | a_o]
        i_t = sigmoid(a_i)                        (B, H)   input gate
        f_t = sigmoid(a_f)                        (B, H)   forget gate
        g_t = tanh(a_g)                           (B, H)   candidate cell
        o_t = sigmoid(a_o)                        (B, H)   output gate
        c_t = f_t * c_{t-1} + i_t * g_t           (B, H)
        m_t = o_t * tanh(c_t)                     (B, H)
        h_t = m_t W_hr^T  with projection, else h_t = m_t      (B, P)

    Parameters
    ----------
    gx : (B, 4H)
    h_prev : (B, P)
    c_prev : (B, H)
    w_hh : (4H, P) ``weight_hh``
    w_hr : (P, H) ``weight_hr`` or None

    Returns
    -------
    h : (B, P), c : (B, H)
    cache : ``(gates, c_prev, tanh_c, m)`` with ``gates = [i | f | g | o]`` (B, 4H)
    """
    a = gx + h_prev @ w_hh.T                                   # (B, 4H)
    gates, c, tanh_c, m = lstm_update(a, c_prev)               # (B, 4H), (B, H) x 3
    h = m if w_hr is None else m @ w_hr.T                      # (B, P)
    return h, c, (gates, c_prev, tanh_c, m)


def lstm_cell_backward(
    dh: np.ndarray,
    dc: np.ndarray,
    cache: tuple,
    w_hh: np.ndarray,
    w_hr: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward through one LSTM step.

    Equations::

        dm      = dh W_hr  (projection)  or  dm = dh          (B, H)
        do      = dm * tanh(c)
        dc      = dc + dm * o * (1 - tanh(c)^2)               (total gradient w.r.t. c_t)
        di      = dc * g
        df      = dc * c_prev
        dg      = dc * i
        dc_prev = dc * f
        da      = [di * i(1-i) | df * f(1-f) | dg * (1-g^2) | do * o(1-o)]   (B, 4H)
        dh_prev = da W_hh                                     (B, P)

    Parameter gradients, summed by the layer: ``dW_ih += da^T x_t``, ``dW_hh += da^T h_prev``,
    ``db_ih = db_hh += sum_b da``, ``dW_hr += dh^T m``.

    Parameters
    ----------
    dh : (B, P) gradient w.r.t. ``h_t``;  dc : (B, H) gradient w.r.t. ``c_t`` from step t+1
    cache : from :func:`lstm_cell_forward`
    w_hh : (4H, P);  w_hr : (P, H) or None

    Returns
    -------
    da : (B, 4H) gradient w.r.t. the pre-activation (= w.r.t. ``gx_t``)
    dh_prev : (B, P)
    dc_prev : (B, H)
    """
    gates, c_prev, tanh_c, _m = cache
    H = c_prev.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H: 3 * H], gates[:, 3 * H:]
    dm = dh if w_hr is None else dh @ w_hr                     # (B, H)
    dc = dc + dm * o * (1 - tanh_c * tanh_c)                   # (B, H)  total gradient w.r.t. c_t
    dgates = np.empty_like(gates)                              # (B, 4H) [di | df | dg | do]
    dgates[:, :H] = dc * g                                     # di
    dgates[:, H: 2 * H] = dc * c_prev                          # df
    dgates[:, 2 * H: 3 * H] = dc * i                           # dg
    dgates[:, 3 * H:] = dm * tanh_c                            # do
    dc_prev = dc * f                                           # (B, H)
    da = dgates * gates * (1 - gates)                          # (B, 4H) sigmoid' for i, f, o
    da[:, 2 * H: 3 * H] = dgates[:, 2 * H: 3 * H] * (1 - g * g)  # tanh' for g
    dh_prev = da @ w_hh                                        # (B, P)
    return da, dh_prev, dc_prev

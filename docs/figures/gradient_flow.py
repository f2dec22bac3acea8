"""How far back a gradient reaches: ||dL/dh_t|| against t for an RNN, a GRU and an LSTM.

The loss reads the last state only, ``L = sum_b w . h_T[b]`` (one fixed random readout ``w``),
so every gradient at an earlier step has travelled back through the recurrence. ``dL/dh_t``
is computed with the NumPy reference's own backward pass (``rnncore.nn``, not an autograd):
the sequence is restarted at step ``t`` from the state ``(h_t, c_t)`` that the first ``t``
steps reach, and ``backward(dstate=(w, 0))`` returns the gradient with respect to that
starting state, ``dstate0 = dL/dh_t`` (the LSTM's ``dL/dc_t`` comes with it).
``tests/test_docs_figures.py`` checks these numbers against finite differences.

Two initialisations per gated cell:

* PyTorch's default, every weight and bias uniform in +-1/sqrt(H): the update gate ``z``
  (GRU) and the forget gate ``f`` (LSTM) start near 0.5, so half the state is forgotten at
  every step and the gradient shrinks about as fast as the RNN's;
* a "remember" bias of +3 on those gates (z, f ~ 0.95 at the start; the LSTM's forget-gate
  bias of Gers et al. 2000 / Jozefowicz et al. 2015): the additive path through
  ``h_t = (1 - z) n + z h_{t-1}`` and ``c_t = f c_{t-1} + i g`` carries the gradient across
  the whole sequence. The RNN has no such path: ``dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh``.

Run from the repository root (matplotlib needed)::

    python docs/figures/gradient_flow.py                 # writes docs/figures/gradient_flow.png
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import rnncore as rc  # noqa: E402

CASES = [("RNN", 0.0), ("GRU", 0.0), ("LSTM", 0.0), ("GRU", 3.0), ("LSTM", 3.0)]


def make_case(kind: str, remember_bias: float = 0.0, I: int = 8, H: int = 32, B: int = 16, T: int = 100,
              seed: int = 0):
    """``(layer, x (B, T, I), w (H,))``: a float64 layer with PyTorch's initialisation and, for
    GRU/LSTM, ``remember_bias`` added to the update / forget gate's input bias."""
    layer = getattr(rc.nn, kind)(I, H, seed=seed, dtype="float64")
    if remember_bias and kind in ("GRU", "LSTM"):
        # gate blocks in bias_ih_l0: GRU (r, z, n), LSTM (i, f, g, o): the second is z / f
        dict(layer.named_parameters())["bias_ih_l0"][H: 2 * H] += remember_bias   # in place
    rng = np.random.default_rng(seed + 1)
    return layer, rng.standard_normal((B, T, I)), rng.standard_normal(H)


def state_at(layer, x: np.ndarray, t: int):
    """The state after the first ``t`` steps (zeros for t = 0): ``h`` or ``(h, c)``, each (1, B, H)."""
    if t == 0:
        return layer.zero_state(x.shape[0])
    _, state = layer.forward(x[:, :t])
    return state


def loss_from(layer, x: np.ndarray, w: np.ndarray, t: int, state) -> float:
    """``L = sum_b w . h_T[b]`` when the sequence is restarted at step ``t`` from ``state``."""
    if t == x.shape[1]:
        h_T = state[0] if isinstance(state, tuple) else state
    else:
        _, s = layer.forward(x[:, t:], state=state)
        h_T = s[0] if isinstance(s, tuple) else s
    return float(np.sum(h_T[0] @ w))


def grad_at(layer, x: np.ndarray, w: np.ndarray, t: int):
    """``dL/dh_t`` (1, B, H) -- LSTM: the pair ``(dL/dh_t, dL/dc_t)`` -- by the reference's backward."""
    B, T, _ = x.shape
    dh_T = np.broadcast_to(w, (1, B, w.size)).copy()
    lstm = isinstance(layer, rc.nn.LSTM)
    if t == T:
        return (dh_T, np.zeros_like(dh_T)) if lstm else dh_T
    layer.forward(x[:, t:], state=state_at(layer, x, t), train=True)
    _, dstate0 = layer.backward(None, dstate=(dh_T, np.zeros_like(dh_T)) if lstm else dh_T)
    return dstate0


def gradient_norms(kind: str, remember_bias: float = 0.0, T: int = 100, **kw) -> np.ndarray:
    """``||dL/dh_t||`` (over the batch and the hidden units) for t = 0 .. T, shape (T + 1,)."""
    layer, x, w = make_case(kind, remember_bias, T=T, **kw)
    out = np.empty(T + 1)
    for t in range(T + 1):
        g = grad_at(layer, x, w, t)
        out[t] = np.linalg.norm(g[0] if isinstance(g, tuple) else g)
    return out


def label(kind: str, remember_bias: float) -> str:
    gate = {"GRU": "update", "LSTM": "forget"}.get(kind)
    if not remember_bias:
        return f"{kind}, PyTorch init"
    return f"{kind}, gate bias +{remember_bias:g} on the {gate} gate"


def plot(norms: dict, path: str, T: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = {"RNN": "#d62728", "GRU": "#1f77b4", "LSTM": "#2ca02c"}
    for (kind, bias), n in norms.items():
        ax.semilogy(np.arange(T + 1), n / n[-1], "--" if bias else "-", color=colors[kind], lw=2,
                    label=label(kind, bias))
    ax.set_xlabel("step t (the loss reads h_T at the right end)")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||  (log scale)")
    ax.set_title(f"Gradient flowing back through time (H=32, T={T}, batch 16)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=100, help="sequence length (default 100)")
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "gradient_flow.png"))
    args = p.parse_args(argv)
    norms = {case: gradient_norms(*case, T=args.T) for case in CASES}
    plot(norms, args.out, args.T)
    back = [t for t in (args.T - 10, args.T - 25, args.T - 50, 0) if t >= 0]
    print("||dL/dh_t|| / ||dL/dh_T|| at t = " + ", ".join(f"T-{args.T - t}" for t in back))
    for case, n in norms.items():
        print(f"  {label(*case):<40} " + "  ".join(f"{n[t] / n[-1]:.1e}" for t in back))
    print(f"wrote {args.out}")
    return norms


if __name__ == "__main__":
    main()

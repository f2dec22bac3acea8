"""Figures with matplotlib (the optional ``plot`` extra): training curves, latency against size.

matplotlib is imported only when a function here is called; without it the call raises an
``ImportError`` that says how to install it (``pip install "rnncore[plot]"``).

Example::

    history = fit(model, loss, opt, X, y, lengths, validation=(Xv, yv, lv))
    rc.plot.history(history, "history.png")          # or rc.plot.history("history.csv", ...)
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["history", "latency"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            "rnncore.plot needs matplotlib, which is not installed: pip install \"rnncore[plot]\" "
            "(or pip install matplotlib==3.11.2)") from e
    return plt


def _metric_names(h: dict[str, Any]) -> list[str]:
    """``loss`` first, then every other per-epoch series that is not a validation copy, a clock
    or bookkeeping (the gradient norm, the count of skipped batches)."""
    bookkeeping = ("epoch", "time", "grad_norm", "skipped")
    names = [k for k, v in h.items() if isinstance(v, list) and k not in bookkeeping
             and not k.startswith("val_")]
    return sorted(names, key=lambda k: (k != "loss", k))


def history(history: dict[str, list] | str | os.PathLike, path: str | os.PathLike | None = None,
            metrics: list[str] | None = None, title: str | None = None):
    """Training curves: one panel per metric (loss first), the training and validation values per epoch.

    Parameters
    ----------
    history : the dict ``fit`` returns (lists ``epoch``, ``loss``, ``val_loss``, ``accuracy``,
        ...), or the path of a CSV written by ``fit(..., history_csv=...)``
    path : save the figure there (the format from the extension, e.g. ``.png``, ``.svg``,
        ``.pdf``) and close it; None: return the open figure (shown by Jupyter / ``plt.show()``)
    metrics : the series to draw (default: ``loss`` and every metric in the history; a
        ``val_<name>`` series is drawn in the panel of ``<name>``)
    title : the figure's title

    Returns
    -------
    the ``matplotlib.figure.Figure``: ``fig.axes[i]`` is the panel of ``metrics[i]``, with
    the lines labelled ``"train"`` and ``"validation"``; a dotted vertical line marks
    ``best_epoch`` when the history has one.
    """
    if isinstance(history, str | os.PathLike):
        from rnncore.nn.history import read_history_csv

        history = read_history_csv(history)
    if not isinstance(history, dict) or "epoch" not in history:
        raise TypeError("history: expected the dict fit() returns (with an 'epoch' list) or a CSV path, "
                        f"got {type(history).__name__}")
    names = _metric_names(history) if metrics is None else list(metrics)
    for name in names:
        if name not in history:
            raise ValueError(f"metrics: {name!r} is not in the history (it has {_metric_names(history)})")
    if not names:
        raise ValueError("history: no per-epoch series to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    epochs = list(history["epoch"])
    best = history.get("best_epoch")
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(epochs, history[name], "-o", ms=3, label="train")
        if "val_" + name in history:
            ax.plot(epochs, history["val_" + name], "-s", ms=3, label="validation")
        if isinstance(best, int) and best in epochs and len(epochs) > 1:
            ax.axvline(best, color="grey", ls=":", lw=1, label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
    return fig


def latency(series: dict[str, dict[int, float]], path: str | os.PathLike | None = None,
            panel: str | None = None, title: str | None = None, xlabel: str = "hidden size H",
            ylabel: str = "latency (us, log scale)", unit: float = 1e6):
    """Latency against model size, one line per engine/precision (log-log axes).

    Parameters
    ----------
    series : ``{label: {size: seconds}}``, e.g. ``{"q8 avx512vnni": {32: 2.1e-7, 64: 3.0e-7}}``;
        or ``{panel: {label: {size: seconds}}}`` with ``panel`` set to ``"panels"`` for one
        panel per key (e.g. ``"gru"``, ``"lstm"``)
    path : save there and close; None: return the open figure
    panel : None (one panel) or ``"panels"``
    title, xlabel, ylabel : texts; ``unit`` multiplies the seconds (1e6: microseconds)

    Returns
    -------
    the Figure; each line's x data are the sizes (sorted) and its y data ``seconds * unit``
    """
    panels = series if panel == "panels" else {"": series}
    if not panels or not all(isinstance(v, dict) and v for v in panels.values()):
        raise ValueError("series: expected {label: {size: seconds}} (or panels of those), non-empty")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (name, lines) in zip(axes[0], panels.items(), strict=True):
        sizes: set[int] = set()
        for lab, pts in lines.items():
            xs = sorted(pts)
            sizes.update(xs)
            ax.plot(xs, [pts[x] * unit for x in xs], "-o", ms=4, label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sorted(sizes), [str(x) for x in sorted(sizes)])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if name:
            ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=100)
        plt.close(fig)
    return fig

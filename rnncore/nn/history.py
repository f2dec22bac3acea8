"""Training history as CSV: ``CSVLogger`` (Keras' ``CSVLogger`` semantics) and ``read_history_csv``.

``fit(..., history_csv="train.csv")`` writes one row per epoch as the epoch ends, so an
interrupted run keeps the epochs it finished::

    epoch,accuracy,grad_norm,loss,time,val_accuracy,val_loss
    1,0.4185185185185185,0.9377...,1.7532...,0.18...,0.6,1.2158...

Columns are ``epoch`` and then the history's per-epoch keys in sorted order, as Keras
writes them; the values are Python's shortest round-trip form, so reading the file gives
back exactly the floats of the history. One difference: ``epoch`` counts from 1, as in the
history ``fit`` returns and prints (Keras writes 0-based epoch indices).
"""

from __future__ import annotations

import csv
import os
from typing import Any

__all__ = ["CSVLogger", "read_history_csv"]


class CSVLogger:
    """Write a ``fit`` history to a CSV file, one row per epoch.

    Parameters
    ----------
    filename : path of the CSV file
    separator : the field separator (default ``","``)
    append : False (default): overwrite the file when training starts; True: append the
        rows to an existing file (its header is kept and must name the same columns)

    Notes
    -----
    Pass it as ``fit(..., history_csv=CSVLogger("train.csv", append=True))``; a plain path
    is ``CSVLogger(path)``.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator: expected a single character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._columns: list[str] | None = None

    def __repr__(self) -> str:
        return f"CSVLogger({self.filename!r}, separator={self.separator!r}, append={self.append})"

    @staticmethod
    def columns(history: dict[str, Any]) -> list[str]:
        """``["epoch"] + sorted(per-epoch keys)`` of a ``fit`` history."""
        keys = [k for k, v in history.items() if isinstance(v, list) and k != "epoch"]
        return ["epoch"] + sorted(keys)

    def on_train_begin(self, history: dict[str, Any]) -> None:
        """Create (or, with ``append``, check) the file and write the header."""
        self._columns = self.columns(history)
        if self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0:
            with open(self.filename, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f, delimiter=self.separator), [])
            if header != self._columns:
                raise ValueError(
                    f"history_csv: {self.filename} has the columns {header}, this training writes "
                    f"{self._columns}; use another file or append=False")
            return
        with open(self.filename, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter=self.separator).writerow(self._columns)

    def on_epoch_end(self, history: dict[str, Any]) -> None:
        """Append the history's last epoch as a row (the file is closed after every row)."""
        if self._columns is None:
            self.on_train_begin(history)
        row = [history[k][-1] for k in self._columns]
        with open(self.filename, "a", newline="", encoding="utf-8") as f:
            csv.writer(f, delimiter=self.separator).writerow(row)


def read_history_csv(path: str | os.PathLike, separator: str = ",") -> dict[str, list]:
    """Read a CSV written by :class:`CSVLogger` back into a history dict of lists.

    ``epoch`` is read as ints, every other column as floats (``nan`` included).
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=separator))
    if not rows:
        raise ValueError(f"path: {os.fspath(path)} is empty, expected a header row")
    header, body = rows[0], rows[1:]
    out: dict[str, list] = {k: [] for k in header}
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"path: {os.fspath(path)} line {i} has {len(row)} fields, expected {len(header)}")
        for k, v in zip(header, row, strict=True):
            out[k].append(int(v) if k == "epoch" else float(v))
    return out

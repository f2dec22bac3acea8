"""Moved to :mod:`rnncore.nn.extended` (a NumPy reference layer, not an importer); this path,
which earlier documentation named, keeps working as a re-export."""

from rnncore.nn.extended import (
    ACTIVATIONS,
    ExtendedRecurrent,
    ReverseTime,
    activation_derivative,
    make_activation,
)

__all__ = ["ExtendedRecurrent", "ReverseTime", "ACTIVATIONS", "make_activation", "activation_derivative"]

"""The NumPy reference: cells with forward and BPTT, layers, losses, optimisers, training."""

from rnncore.nn.module import Module

__all__ = ["Module"]

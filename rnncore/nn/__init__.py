"""The NumPy reference: cells with forward and BPTT, layers, losses, optimisers, training."""

from rnncore.nn.module import Module
from rnncore.nn.recurrent import GRU, LSTM, RNN

__all__ = ["Module", "RNN", "GRU", "LSTM"]

"""The NumPy reference: cells with forward and BPTT, layers, losses, optimisers, training."""

from rnncore.nn.history import CSVLogger
from rnncore.nn.layers import AttentionPool, Dropout, Embedding, LastStep, Linear, MaskedMean, Sequential
from rnncore.nn.losses import CTC, MAE, MSE, BCEWithLogits, CrossEntropy
from rnncore.nn.module import Module
from rnncore.nn.optim import SGD, Adam, AdamW, clip_grad_norm_
from rnncore.nn.prune import BlockPruning, block_mask
from rnncore.nn.recurrent import GRU, LSTM, RNN

__all__ = ["Module", "RNN", "GRU", "LSTM"]
__all__ += ["Linear", "Embedding", "Dropout", "Sequential", "LastStep", "MaskedMean", "AttentionPool"]
__all__ += ["CrossEntropy", "BCEWithLogits", "MSE", "MAE", "CTC"]
__all__ += ["SGD", "Adam", "AdamW", "clip_grad_norm_", "CSVLogger", "BlockPruning", "block_mask"]

"""The NumPy reference: cells with forward and BPTT, layers, losses, optimisers, training."""

from rnncore.nn.chunk import (
    ChunkMean,
    ChunkPositions,
    FrameConcat,
    FrameResidual,
    LogAffine,
    SmoothedMeanSubtract,
)
from rnncore.nn.conv import AvgPool1d, Conv1d, FrameConv1d, Magnitude, MaxPool1d
from rnncore.nn.conv2d import AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, MaxPool2d
from rnncore.nn.history import CSVLogger
from rnncore.nn.layers import (
    AttentionPool,
    ConcatPool,
    Dropout,
    Embedding,
    LastStep,
    Linear,
    MaskedMax,
    MaskedMean,
    Sequential,
)
from rnncore.nn.lncells import LayerNormGRU, LayerNormLSTM
from rnncore.nn.losses import CTC, MAE, MSE, BCEWithLogits, CrossEntropy
from rnncore.nn.melspec import LogMelSpectrogram
from rnncore.nn.module import Module
from rnncore.nn.norm import BatchNorm1d, InstanceNorm1d, LayerNorm, fold_batchnorm, fold_batchnorms
from rnncore.nn.optim import SGD, Adam, AdamW, clip_grad_norm_
from rnncore.nn.pointwise import (
    ELU,
    GELU,
    Abs,
    HardSigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    MulHalves,
    ReLU,
    ReLU6,
    Residual,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from rnncore.nn.prune import BlockPruning, block_mask
from rnncore.nn.recurrent import GRU, LSTM, RNN

__all__ = ["Module", "RNN", "GRU", "LSTM"]
__all__ += ["Linear", "Embedding", "Dropout", "Sequential"]
__all__ += ["LastStep", "MaskedMean", "MaskedMax", "AttentionPool", "ConcatPool"]
__all__ += ["CrossEntropy", "BCEWithLogits", "MSE", "MAE", "CTC"]
__all__ += ["SGD", "Adam", "AdamW", "clip_grad_norm_", "CSVLogger"]
__all__ += ["LayerNormGRU", "LayerNormLSTM"]
__all__ += ["Conv1d", "FrameConv1d", "Magnitude", "MaxPool1d", "AvgPool1d"]
__all__ += ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d"]
__all__ += ["ReLU", "Sigmoid", "Tanh", "HardSigmoid", "LeakyReLU", "ELU", "GELU", "Softmax", "LogSoftmax",
            "Residual"]
__all__ += ["MulHalves"]
__all__ += ["Hardtanh", "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign"]
__all__ += ["LogAffine", "SmoothedMeanSubtract", "FrameConcat", "FrameResidual"]
__all__ += ["ChunkPositions", "ChunkMean"]
__all__ += ["LayerNorm", "BatchNorm1d", "fold_batchnorm", "fold_batchnorms"]
__all__ += ["LogMelSpectrogram"]
__all__ += ["InstanceNorm1d", "Abs"]
__all__ += ["BlockPruning", "block_mask"]

"""rnncore: recurrent networks (RNN, GRU, LSTM) as a readable NumPy reference and a fast C core.

``rnncore.nn`` is the NumPy reference (forward and backprop-through-time, training);
the compiled engine, quantisation and model files build on it.
"""

from rnncore import gradcheck, io, nn, plot, quant
from rnncore.engine import Engine, compile, isa, load, save, set_isa

__version__ = "0.1.0"
__all__ = ["nn", "gradcheck", "quant", "io", "plot", "Engine", "compile", "save", "load", "isa", "set_isa",
           "__version__"]

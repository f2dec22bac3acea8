"""A log-mel spectrogram front-end in NumPy: framing, window, DFT by matrix product, mel filterbank, log.

The definitions are torchaudio's ``MelSpectrogram`` (and librosa's ``feature.melspectrogram``)::

    frame_f[n]  = x_pad[f * hop + n],                      n < n_fft     (frames of the padded signal)
    X_f[k]      = sum_n w[n] frame_f[n] exp(-2 pi i k n / n_fft),  k <= n_fft/2   (one-sided DFT)
    P_f[k]      = |X_f[k]|^power                           (power 2: the power spectrum)
    mel_f[m]    = sum_k P_f[k] fb[k, m]                    (triangular mel filters)
    y_f[m]      = log(mel_f[m] + log_offset)   or  10 log10(max(mel_f[m], amin))  ("db")

``w`` is the window of ``win_length`` samples zero-padded to ``n_fft`` in the middle (as
``torch.stft``); ``x_pad`` is the signal with ``n_fft // 2`` samples of reflection (or zeros) on
both sides when ``center=True`` (torchaudio's and librosa's default), the signal itself when
``center=False``. ``fb`` is :func:`mel_filterbank` (HTK or Slaney mel scale, optional Slaney
area normalisation).

The DFT is two real matrix products (``re = frames_w C^T``, ``im = frames_w S^T`` with
``C[k, n] = cos(2 pi k n / n_fft)``, ``S[k, n] = -sin(2 pi k n / n_fft)``), which makes the
backward three more: everything from the samples to ``y`` is differentiable (``power=1``:
the gradient of ``|X|`` at 0 is taken as 0).

Streaming (``center=False``): the layer keeps the last samples of the stream that the next
frames still need (fewer than ``n_fft``); fed chunk by chunk it returns exactly the frames of
the whole-signal run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnncore.nn.conv import _gather, _scatter, window_index
from rnncore.nn.layers import _check_dy, _float_input, _need
from rnncore.nn.module import Module, check_int, resolve_dtype

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "window_function", "LogMelSpectrogram"]

_F_SP = 200.0 / 3.0  # Slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0  # Slaney: log-spaced above 1 kHz, 27 mels per factor 6.4


def hz_to_mel(f: np.ndarray | float, mel_scale: str = "htk") -> np.ndarray:
    """Hz to mel. ``"htk"``: ``2595 log10(1 + f/700)``. ``"slaney"`` (librosa's default):
    ``3 f / 200`` below 1 kHz, ``15 + 27 ln(f / 1000) / ln(6.4)`` above."""
    f = np.asarray(f, np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale: expected 'htk' or 'slaney', got {mel_scale!r}")
    lin = f / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log, lin)


def mel_to_hz(m: np.ndarray | float, mel_scale: str = "htk") -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale: expected 'htk' or 'slaney', got {mel_scale!r}")
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_filterbank(
    n_freqs: int,
    f_min: float,
    f_max: float,
    n_mels: int,
    sample_rate: float,
    norm: str | None = None,
    mel_scale: str = "htk",
) -> np.ndarray:
    """Triangular mel filters ``fb (n_freqs, n_mels)``, float64, torchaudio's ``melscale_fbanks``.

    The ``n_mels + 2`` edge frequencies ``f_pts`` are equally spaced in mel between ``f_min`` and
    ``f_max``; filter ``m`` rises linearly from 0 at ``f_pts[m]`` to 1 at ``f_pts[m+1]`` and falls
    to 0 at ``f_pts[m+2]``, evaluated at the DFT bin frequencies ``k sample_rate / (2 (n_freqs-1))``:
    ``fb[k, m] = max(0, min((f_k - f_pts[m]) / (f_pts[m+1] - f_pts[m]),
    (f_pts[m+2] - f_k) / (f_pts[m+2] - f_pts[m+1])))``. ``norm="slaney"`` scales filter ``m`` by
    ``2 / (f_pts[m+2] - f_pts[m])`` (equal area). ``librosa.filters.mel(sr, n_fft)`` is
    ``mel_filterbank(n_fft//2 + 1, 0, sr/2, 128, sr, "slaney", "slaney").T``.

    (torchaudio spaces the bins up to ``sample_rate // 2``, librosa up to ``sample_rate / 2``;
    they differ only for odd sample rates, where this follows librosa.)
    """
    n_freqs, n_mels = check_int("n_freqs", n_freqs, 2), check_int("n_mels", n_mels, 1)
    if not 0 <= f_min < f_max:
        raise ValueError(f"f_min, f_max: expected 0 <= f_min < f_max, got {f_min}, {f_max}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm: expected None or 'slaney', got {norm!r}")
    freqs = np.linspace(0.0, sample_rate / 2.0, n_freqs)
    m_pts = np.linspace(hz_to_mel(f_min, mel_scale), hz_to_mel(f_max, mel_scale), n_mels + 2)
    f_pts = mel_to_hz(m_pts, mel_scale)
    f_diff = np.diff(f_pts)  # (n_mels + 1,)
    slopes = f_pts[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]  # rising edge
    up = slopes[:, 2:] / f_diff[1:]  # falling edge
    fb = np.maximum(0.0, np.minimum(down, up))
    if norm == "slaney":
        fb *= 2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels])
    return fb


def window_function(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """The periodic window of ``win_length`` samples (``torch.hann_window(periodic=True)``,
    ``scipy.signal.get_window(..., fftbins=True)``), zero-padded on both sides to ``n_fft``
    (left ``(n_fft - win_length) // 2``), float64. ``"hann"``: ``0.5 - 0.5 cos(2 pi n / N)``,
    ``"hamming"``: ``0.54 - 0.46 cos(2 pi n / N)``, ``"rectangular"``: ones."""
    n = np.arange(win_length)
    if name == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    elif name == "hamming":
        w = 0.54 - 0.46 * np.cos(2 * np.pi * n / win_length)
    elif name == "rectangular":
        w = np.ones(win_length)
    else:
        raise ValueError(f"window: expected 'hann', 'hamming' or 'rectangular', got {name!r}")
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left))


class LogMelSpectrogram(Module):
    """Log-mel spectrogram of the samples that arrive step by step (equations in the module docstring).

    Parameters
    ----------
    sample_rate : samples per second
    n_fft : DFT size (the frame length)
    hop_length : samples between frames (default ``win_length // 2``, torchaudio's)
    win_length : window length, ``<= n_fft`` (default ``n_fft``)
    n_mels, f_min, f_max : the filterbank (``f_max`` default ``sample_rate / 2``)
    window : ``"hann"`` (default), ``"hamming"``, ``"rectangular"``
    power : 2 (power spectrum, default) or 1 (magnitude)
    mel_scale, norm : ``"htk"``/``"slaney"`` and None/``"slaney"`` (torchaudio defaults: htk, None;
        librosa's: slaney, slaney)
    center, pad_mode : pad ``n_fft // 2`` on both sides (``"reflect"`` or ``"constant"``) as
        torchaudio/librosa; ``center=False`` frames the signal as it is (needed to stream)
    log : ``"log"`` (natural log of ``mel + log_offset``), ``"db"`` (``10 log10(max(mel, amin))``,
        no ``top_db``) or None (the mel spectrogram itself)
    log_offset, amin : as above
    dtype : "float64" or "float32" (the matrices are built in float64 and then cast)

    Notes
    -----
    Shapes: ``x (B, T, S)``, ``S`` new samples per step (the waveform is ``x.reshape(B, T*S)``;
    ``S = hop_length`` gives one frame per step once the first ``n_fft`` samples are in)
    -> ``y (B, F, n_mels)`` with ``F = floor((T*S + pad - n_fft) / hop) + 1`` frames.
    No parameters (the filterbank and the DFT are fixed); ``backward`` gives ``dx``.
    """

    takes_lengths = True  # to refuse them: samples in, frames out (Sequential passes lengths here)
    keeps_time = True

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 400,
        hop_length: int | None = None,
        win_length: int | None = None,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        window: str = "hann",
        power: float = 2.0,
        mel_scale: str = "htk",
        norm: str | None = None,
        center: bool = True,
        pad_mode: str = "reflect",
        log: str | None = "log",
        log_offset: float = 1e-6,
        amin: float = 1e-10,
        dtype: str = "float64",
    ) -> None:
        super().__init__()
        self.sample_rate = check_int("sample_rate", sample_rate, 1)
        self.n_fft = check_int("n_fft", n_fft, 2)
        self.win_length = self.n_fft if win_length is None else check_int("win_length", win_length, 1)
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length: expected <= n_fft={n_fft}, got {win_length}")
        self.hop_length = (
            max(self.win_length // 2, 1) if hop_length is None else check_int("hop_length", hop_length, 1)
        )
        self.n_mels = check_int("n_mels", n_mels, 1)
        self.f_min, self.f_max = float(f_min), float(sample_rate / 2 if f_max is None else f_max)
        if power not in (1, 2, 1.0, 2.0):
            raise ValueError(f"power: expected 1 (magnitude) or 2 (power), got {power!r}")
        self.power = float(power)
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode: expected 'reflect' or 'constant', got {pad_mode!r}")
        if log not in ("log", "db", None):
            raise ValueError(f"log: expected 'log', 'db' or None, got {log!r}")
        self.center, self.pad_mode, self.log = bool(center), pad_mode, log
        self.log_offset, self.amin = float(log_offset), float(amin)
        self.window_name, self.mel_scale, self.norm = window, mel_scale, norm
        self.dtype = resolve_dtype(dtype)
        n_freqs = self.n_fft // 2 + 1
        k, n = np.arange(n_freqs)[:, None], np.arange(self.n_fft)[None, :]
        angle = 2 * np.pi * ((k * n) % self.n_fft) / self.n_fft  # exact phase for large k n
        self.window = window_function(window, self.win_length, self.n_fft).astype(self.dtype)
        self.cos = np.cos(angle).astype(self.dtype)  # (n_freqs, n_fft)
        self.sin = (-np.sin(angle)).astype(self.dtype)
        self.fb = mel_filterbank(
            n_freqs, self.f_min, self.f_max, self.n_mels, self.sample_rate, norm, mel_scale
        ).astype(self.dtype)  # (n_freqs, n_mels)
        self.pad = self.n_fft // 2 if self.center else 0
        self._cache = None

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"win_length={self.win_length}, n_mels={self.n_mels}, mel_scale='{self.mel_scale}', "
            f"center={self.center}, log={self.log!r}"
        )

    def record(self) -> dict:
        """The layer as a record description: a future ``.rnc`` kind (the matrices are its tensors)."""
        return {
            "kind": "log_mel",
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "power": self.power,
            "log": self.log,
            "log_offset": self.log_offset,
            "amin": self.amin,
            "center": self.center,
            "tensors": {"window": self.window, "cos": self.cos, "sin": self.sin, "fb": self.fb},
        }

    # -- the pieces ---------------------------------------------------------------------------
    def _waveform(self, x: object) -> np.ndarray:
        x = _float_input("x", x, self.dtype)
        if x.ndim != 3:
            raise ValueError(f"x: expected shape (batch, time, samples per step), got {x.shape}")
        return x.reshape(x.shape[0], -1, 1)  # (B, N, 1): one channel of samples

    def _frames_to_mel(self, frames: np.ndarray, train: bool) -> np.ndarray:
        """``frames (B, F, n_fft) -> y (B, F, n_mels)``."""
        fw = frames * self.window
        re, im = fw @ self.cos.T, fw @ self.sin.T  # (B, F, n_freqs)
        p = re * re + im * im
        if self.power == 1.0:
            p = np.sqrt(p)
        mel = p @ self.fb
        if self.log == "log":
            y = np.log(mel + self.dtype.type(self.log_offset))
        elif self.log == "db":
            y = 10.0 * np.log10(np.maximum(mel, self.dtype.type(self.amin)))
        else:
            y = mel
        self._cache = (re, im, p, mel) if train else None
        return y.astype(self.dtype, copy=False)

    def forward(
        self, x: np.ndarray, lengths: Any = None, train: bool = False, *, mask: Any = None
    ) -> np.ndarray:
        """``x (B, T, S) -> y (B, F, n_mels)`` over the whole signal (``lengths``/``mask``: refused)."""
        if lengths is not None or mask is not None:
            raise ValueError(
                "lengths: LogMelSpectrogram turns samples into frames, so per-sequence lengths of its input "
                "do not apply to its output; use equal-length signals (or stream each one)"
            )
        wav = self._waveform(x)
        N = wav.shape[1]
        if self.center and self.pad_mode == "reflect" and N <= self.pad:
            raise ValueError(f"x: reflect padding of {self.pad} needs more than {self.pad} samples, got {N}")
        idx = window_index(
            N,
            self.n_fft,
            self.hop_length,
            1,
            self.pad,
            self.pad,
            "reflect" if self.pad_mode == "reflect" else "zeros",
        )
        if idx.shape[0] == 0:
            raise ValueError(f"x: {N} samples are fewer than one frame of n_fft={self.n_fft}")
        y = self._frames_to_mel(_gather(wav, idx)[..., 0], train)
        self._index = (idx, N, x.shape) if train else None
        return y

    def frames(self, x: np.ndarray) -> np.ndarray:
        """``x (B, T, S) -> frames (B, F, n_fft)``: the (padded) signal cut into the frames that
        :meth:`forward` windows, ``frames[b, f] = x_pad[b, f*hop : f*hop + n_fft]``. A compiled
        log-mel front-end (``rc.compile``, center=False) takes one frame per step: its ``run``
        takes these frames."""
        wav = self._waveform(x)
        N = wav.shape[1]
        if self.center and self.pad_mode == "reflect" and N <= self.pad:
            raise ValueError(f"x: reflect padding of {self.pad} needs more than {self.pad} samples, got {N}")
        idx = window_index(N, self.n_fft, self.hop_length, 1, self.pad, self.pad,
                           "reflect" if self.pad_mode == "reflect" else "zeros")
        return _gather(wav, idx)[..., 0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """``dy (B, F, n_mels) -> dx (B, T, S)``: back through log, filters, power, DFT, window, frames."""
        _need(self._cache, "LogMelSpectrogram")
        re, im, p, mel = self._cache
        idx, N, shape = self._index
        dy = _check_dy(dy, mel.shape, self.dtype, "LogMelSpectrogram")
        if self.log == "log":
            dmel = dy / (mel + self.dtype.type(self.log_offset))
        elif self.log == "db":
            dmel = np.where(mel > self.amin, dy * (10.0 / math.log(10.0)) / np.maximum(mel, self.amin), 0)
        else:
            dmel = dy
        dp = dmel @ self.fb.T
        if self.power == 1.0:  # p = |X|: dp/dre = re / |X|
            dp = np.where(p > 0, dp / np.where(p > 0, p, 1), 0)
            dre, dim = dp * re, dp * im
        else:
            dre, dim = 2 * dp * re, 2 * dp * im
        dframes = (dre @ self.cos + dim @ self.sin) * self.window  # (B, F, n_fft)
        return _scatter(dframes[..., None], idx, N).reshape(shape).astype(self.dtype, copy=False)

    # -- streaming -------------------------------------------------------------------------------
    def stream_state(self, batch: int) -> np.ndarray:
        """The initial stream state: no samples yet, ``(batch, 0)``. Needs ``center=False``."""
        if self.center:
            raise ValueError(
                "LogMelSpectrogram: streaming needs center=False (centring pads with future samples)"
            )
        return np.zeros((batch, 0), self.dtype)

    def stream(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, np.ndarray]:
        """Run a chunk ``x (B, n, S)`` (``n >= 0``); returns ``(y (B, F_new, n_mels), state)``, the
        frames completed by this chunk, and the samples the next frames still need."""
        if state is None:
            state = self.stream_state(np.shape(x)[0])
        buf = np.concatenate([state, self._waveform(x)[..., 0]], axis=1)  # (B, samples kept + new)
        idx = window_index(buf.shape[1], self.n_fft, self.hop_length)
        y = self._frames_to_mel(_gather(buf[..., None], idx)[..., 0], train=False)
        return y, buf[:, idx.shape[0] * self.hop_length :].copy()

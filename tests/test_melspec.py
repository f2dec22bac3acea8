"""The log-mel front-end (issue 16) against independent references.

torchaudio and librosa are not installed here, so the pieces are checked one by one:

* the framed, windowed one-sided DFT against ``torch.stft`` (center True/False, reflect and
  constant padding, a window shorter than n_fft), power 2 and 1;
* the mel scale against the values printed in librosa's documentation
  (``hz_to_mel(60) = 0.9``, ``hz_to_mel([110, 220, 440]) = [1.65, 3.3, 6.6]``,
  ``mel_to_hz([1..5])``: https://librosa.org/doc/latest/generated/librosa.hz_to_mel.html and
  ``mel_to_hz.html``) and the HTK formula at points whose value is known in closed form;
* the filterbank against the first rows of ``librosa.filters.mel(sr=22050, n_fft=2048)`` as
  published (17 digits) in the docs of the Rust port ``mel_filter``
  (https://docs.rs/mel_filter/latest/mel_filter/fn.mel.html, which asserts them against
  librosa), and against a loop over the textbook triangle definition written here;
* the whole layer (torch.stft power spectrum @ our filterbank, then log) and its backward
  against torch autograd through torch.stft, plus finite differences;
* streaming chunk by chunk against the whole signal.
"""

import math

import numpy as np
import pytest
import torch
from test_frontend_layers import stream_in_cuts

from rnncore.gradcheck import check_module
from rnncore.nn.melspec import LogMelSpectrogram, hz_to_mel, mel_filterbank, mel_to_hz, window_function

RNG = np.random.default_rng(160)


def test_mel_scale_librosa_documented_values():
    np.testing.assert_allclose(hz_to_mel(60, "slaney"), 0.9, rtol=1e-14)
    np.testing.assert_allclose(hz_to_mel([110, 220, 440], "slaney"), [1.65, 3.3, 6.6], rtol=1e-14)
    np.testing.assert_allclose(
        mel_to_hz([1, 2, 3, 4, 5], "slaney"), [66.667, 133.333, 200.0, 266.667, 333.333], atol=5e-4
    )
    # above 1 kHz: 15 + 27 ln(f/1000)/ln(6.4), so 1000 Hz -> 15 and 6400 Hz -> 42
    np.testing.assert_allclose(hz_to_mel([1000, 6400], "slaney"), [15.0, 42.0], rtol=1e-14)
    # HTK: 2595 log10(1 + f/700): f = 700 -> 2595 log10 2, f = 6300 -> 2595
    np.testing.assert_allclose(hz_to_mel([700, 6300], "htk"), [2595 * math.log10(2), 2595.0], rtol=1e-14)
    for scale in ("htk", "slaney"):
        f = np.array([0.0, 50.0, 999.0, 1000.0, 1234.5, 8000.0])
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, scale), scale), f, rtol=1e-12, atol=1e-9)


def test_filterbank_librosa_published_rows():
    fb = mel_filterbank(1025, 0.0, 11025.0, 128, 22050, norm="slaney", mel_scale="slaney").T
    assert fb.shape == (128, 1025)
    np.testing.assert_allclose(
        fb[0, :6],
        [0.0, 0.016182853208219942, 0.032365706416439884, 0.028990088037379964, 0.012807234829160026, 0.0],
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        fb[1, :9],
        [
            0.0,
            0.0,
            0.0,
            0.009779235793639925,
            0.025962089001859864,
            0.035393705451959974,
            0.01921085224374004,
            0.003027999035520103,
            0.0,
        ],
        rtol=1e-12,
        atol=1e-15,
    )


@pytest.mark.parametrize("scale,norm", [("htk", None), ("slaney", "slaney"), ("htk", "slaney")])
def test_filterbank_equals_the_triangle_definition(scale, norm):
    n_freqs, n_mels, sr, f_min, f_max = 33, 10, 16000, 40.0, 7600.0
    fb = mel_filterbank(n_freqs, f_min, f_max, n_mels, sr, norm, scale)
    lo_mel, hi_mel = hz_to_mel(f_min, scale), hz_to_mel(f_max, scale)
    edges = [
        float(mel_to_hz(lo_mel + (hi_mel - lo_mel) * i / (n_mels + 1), scale)) for i in range(n_mels + 2)
    ]
    for m in range(n_mels):
        lo, ce, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_freqs):
            f = k * sr / 2 / (n_freqs - 1)
            w = (f - lo) / (ce - lo) if lo <= f <= ce else (hi - f) / (hi - ce) if ce < f <= hi else 0.0
            if norm == "slaney":
                w *= 2 / (hi - lo)
            assert fb[k, m] == pytest.approx(w, rel=1e-9, abs=1e-12), (m, k)


def test_window_is_torchs():
    for wl in (16, 12):
        ref = torch.hann_window(wl, periodic=True, dtype=torch.float64).numpy()
        left = (16 - wl) // 2
        np.testing.assert_allclose(
            window_function("hann", wl, 16), np.pad(ref, (left, 16 - wl - left)), atol=1e-15
        )
    np.testing.assert_allclose(
        window_function("hamming", 16, 16),
        torch.hamming_window(16, periodic=True, dtype=torch.float64).numpy(),
        atol=1e-15,
    )


def torch_power_spec(x, m):
    """|torch.stft|^power, (B, F, n_freqs), differentiable."""
    win = torch.tensor(window_function(m.window_name, m.win_length, m.win_length))
    X = torch.stft(
        x,
        m.n_fft,
        m.hop_length,
        m.win_length,
        window=win,
        center=m.center,
        pad_mode=m.pad_mode,
        return_complex=True,
    )
    return X.abs().pow(m.power).transpose(1, 2)


CASES = [
    dict(center=True, pad_mode="reflect"),
    dict(center=True, pad_mode="constant"),
    dict(center=False),
    dict(center=False, win_length=24, power=1.0),
    dict(center=True, mel_scale="slaney", norm="slaney", log="db"),
]


@pytest.mark.parametrize("kw", CASES)
def test_matches_torch_stft_and_autograd(kw):
    m = LogMelSpectrogram(16000, n_fft=32, hop_length=8, n_mels=6, **kw)
    B, T, S = 2, 20, 8
    x = RNG.standard_normal((B, T, S))
    xt = torch.tensor(x.reshape(B, T * S), requires_grad=True)
    mel = torch_power_spec(xt, m) @ torch.tensor(m.fb)
    ref = torch.log(mel + 1e-6) if m.log == "log" else 10 * torch.log10(torch.clamp(mel, min=1e-10))
    y = m.forward(x, train=True)
    np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = RNG.standard_normal(y.shape)
    (ref * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(m.backward(dy), xt.grad.numpy().reshape(B, T, S), rtol=1e-8, atol=1e-10)


def test_gradcheck():
    for kw in (dict(center=True), dict(center=False, power=1.0, log="db")):
        m = LogMelSpectrogram(8000, n_fft=8, hop_length=4, n_mels=3, **kw)
        rep = check_module(m, RNG.standard_normal((1, 5, 4)))
        assert rep.ok, rep


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_stream_equals_whole_signal(dtype, tol):
    m = LogMelSpectrogram(16000, n_fft=64, hop_length=16, n_mels=8, center=False, dtype=dtype)
    x = (RNG.standard_normal((2, 30, 16)) * 0.1).astype(dtype)
    whole = m.forward(x)
    assert whole.shape == (2, (30 * 16 - 64) // 16 + 1, 8) and whole.dtype == np.dtype(dtype)
    for cuts in ([1] * 30, [5, 0, 2, 23]):
        got, _ = stream_in_cuts(m, x, cuts)
        np.testing.assert_allclose(got, whole, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="center=False"):
        LogMelSpectrogram(16000, n_fft=64).stream_state(1)


def test_lengths_are_refused_by_name():
    from rnncore.nn import Sequential
    m = Sequential(LogMelSpectrogram(8000, n_fft=8, hop_length=4, n_mels=3, center=False))
    with pytest.raises(ValueError, match="lengths: LogMelSpectrogram"):
        m.forward(np.zeros((2, 6, 4)), lengths=np.array([6, 3]))

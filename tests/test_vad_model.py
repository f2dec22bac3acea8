"""A VAD-shaped model (issue 16): frames -> Conv within the frame -> |.| -> Conv1d -> ReLU -> GRU/LSTM
-> Linear -> sigmoid per frame, trained with ``fit`` and run frame by frame with ``Sequential.stream``.

The data are synthetic (made here, nothing downloaded): frames of noise at a random level, with
runs of "voiced" frames that add a harmonic tone; the label of a frame is whether the tone is on.
"""

import numpy as np
import pytest
import torch

from rnncore.nn import (
    GRU,
    LSTM,
    Adam,
    BCEWithLogits,
    Conv1d,
    FrameConv1d,
    Linear,
    LogMelSpectrogram,
    Magnitude,
    ReLU,
    Sequential,
    Sigmoid,
)
from rnncore.nn.train import fit, predict

FRAME, SR = 32, 8000


def make_data(n, T, seed):
    rng = np.random.default_rng(seed)
    X = np.empty((n, T, FRAME))
    y = np.zeros((n, T, 1))
    t = np.arange(T * FRAME) / SR
    for i in range(n):
        on = np.zeros(T, bool)
        pos = 0
        while pos < T:  # alternating runs of 2..6 frames
            run = int(rng.integers(2, 7))
            on[pos : pos + run] = rng.random() < 0.5
            pos += run
        f0 = rng.uniform(300, 900)
        tone = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6)) / h for h in (1, 2, 3))
        wave = rng.uniform(0.2, 0.6) * rng.standard_normal(T * FRAME) + np.repeat(on, FRAME) * tone * 0.8
        X[i] = wave.reshape(T, FRAME)
        y[i, :, 0] = on
    return X, y


def vad_model(cell, seed=0):
    return Sequential(
        FrameConv1d(1, 8, 8, frame_length=FRAME, stride=4, seed=seed),  # (B, T, 8 * 7)
        Magnitude(),  # re = channels 0..3, im = 4..7
        Conv1d(28, 12, 3, padding="causal", seed=seed + 1),
        ReLU(),
        cell(12, 12, seed=seed + 2),
        Linear(12, 1, seed=seed + 3),
    )


@pytest.mark.parametrize("cell", [GRU, LSTM])
def test_vad_model_trains_with_fit_and_streams(cell):
    X, y = make_data(96, 24, seed=1)
    Xv, yv = make_data(32, 24, seed=2)
    model = vad_model(cell)
    loss = BCEWithLogits()
    before = loss.forward(predict(model, Xv), yv)
    hist = fit(
        model, loss, Adam(model, lr=1e-2), X, y, epochs=12, batch_size=16, validation=(Xv, yv), verbose=False
    )
    after = loss.forward(predict(model, Xv), yv)
    assert after < 0.5 * before, (before, after)
    assert hist["val_accuracy"][-1] > 0.9, hist["val_accuracy"]

    detector = Sequential(*model, Sigmoid())  # the trained layers (the same arrays) + sigmoid
    whole = detector.forward(Xv[:4])
    np.testing.assert_allclose(whole, 1 / (1 + np.exp(-model.forward(Xv[:4]))), rtol=1e-12)
    state, probs = detector.stream_state(4), []
    for t in range(Xv.shape[1]):  # one frame at a time
        p, state = detector.stream(Xv[:4, t : t + 1], state)
        probs.append(p)
    np.testing.assert_allclose(np.concatenate(probs, axis=1), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-6)])
def test_log_mel_front_end_model_streams(dtype, tol):
    hop = 16
    model = Sequential(
        LogMelSpectrogram(SR, n_fft=64, hop_length=hop, n_mels=10, center=False, dtype=dtype),
        Conv1d(10, 6, 3, padding="causal", dtype=dtype, seed=1),
        ReLU(),
        GRU(6, 8, dtype=dtype, seed=2),
        Linear(8, 1, dtype=dtype, seed=3),
        Sigmoid(),
    )
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((2, 40, hop))).astype(dtype)  # hop new samples per step
    whole = model.forward(x)
    assert whole.shape == (2, 40 - 64 // hop + 1, 1)
    state, outs = model.stream_state(2), []
    for t in range(40):
        p, state = model.stream(x[:, t : t + 1], state)
        assert p.shape[1] == (1 if t >= 64 // hop - 1 else 0)  # a frame once n_fft samples are in
        outs.append(p)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, rtol=tol, atol=tol)


def test_log_mel_front_end_model_trains():
    """Gradients flow through the whole stack (front-end included) and fit lowers the loss."""
    hop = 16
    X, y = make_data(48, 12, seed=4)  # frames of 32 = 2 hops
    Xs = X.reshape(48, 24, hop)
    model = Sequential(
        LogMelSpectrogram(SR, n_fft=32, hop_length=32, n_mels=12, center=False),
        Conv1d(12, 8, 2, padding="causal", seed=1),
        ReLU(),
        GRU(8, 8, seed=2),
        Linear(8, 1, seed=3),
    )
    assert model.forward(Xs).shape == (48, 12, 1)  # one mel frame per labelled frame
    hist = fit(model, BCEWithLogits(), Adam(model, lr=1e-2), Xs, y, epochs=8, batch_size=12, verbose=False)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0], hist["loss"]


class TorchSileroShaped(torch.nn.Module):
    """Silero VAD v5/v6's architecture (16 kHz), written here in PyTorch with random weights: each
    576-sample frame -> reflect pad 64 -> Conv1d(1, 258, 256, stride 128) (the STFT) -> sqrt(re^2 + im^2)
    -> 4 x (Conv1d, ReLU) inside the frame -> LSTM over the frames -> ReLU -> 1x1 Conv1d -> sigmoid."""

    def __init__(self):
        super().__init__()
        self.stft = torch.nn.Conv1d(1, 258, 256, stride=128, bias=False)
        self.enc = torch.nn.Sequential(
            torch.nn.Conv1d(129, 128, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv1d(128, 64, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv1d(64, 64, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv1d(64, 128, 3, padding=1),
            torch.nn.ReLU(),
        )
        self.lstm = torch.nn.LSTM(128, 128, batch_first=True)
        self.head = torch.nn.Conv1d(128, 1, 1)

    def forward(self, x):  # x (B, T, 576)
        B, T, L = x.shape
        f = torch.nn.functional.pad(x.reshape(B * T, 1, L), (0, 64), mode="reflect")
        s = self.stft(f)
        mag = torch.sqrt(s[:, :129] ** 2 + s[:, 129:] ** 2)  # (B*T, 129, 4)
        feat = self.enc(mag).reshape(B, T, 128)  # (B*T, 128, 1) -> per frame
        h, _ = self.lstm(feat)
        out = self.head(torch.relu(h).transpose(1, 2))  # (B, 1, T)
        return torch.sigmoid(out).transpose(1, 2)  # (B, T, 1)


def silero_shaped_from_torch(tm):
    from rnncore.nn import Linear as Lin

    def fc(conv, cin, L, stride=1, pad=1, **kw):
        m = FrameConv1d(
            cin,
            conv.out_channels,
            conv.kernel_size[0],
            frame_length=L,
            stride=stride,
            padding=pad,
            bias=conv.bias is not None,
            **kw,
        )
        m.load_state_dict(conv.state_dict())
        return m

    e = tm.enc
    lstm = LSTM(128, 128)
    lstm.load_state_dict(tm.lstm.state_dict())
    head = Lin(128, 1)
    head.load_state_dict({"weight": tm.head.weight[:, :, 0], "bias": tm.head.bias})
    return Sequential(
        fc(tm.stft, 1, 576, stride=128, pad=(0, 64), padding_mode="reflect"),
        Magnitude(),
        fc(e[0], 129, 4),
        ReLU(),
        fc(e[2], 128, 4, stride=2),
        ReLU(),
        fc(e[4], 64, 2, stride=2),
        ReLU(),
        fc(e[6], 64, 1),
        ReLU(),
        lstm,
        ReLU(),
        head,
        Sigmoid(),
    )


def test_silero_shaped_model_equals_the_same_architecture_in_torch():
    torch.manual_seed(0)
    tm = TorchSileroShaped().double()
    model = silero_shaped_from_torch(tm)
    x = np.random.default_rng(5).standard_normal((2, 6, 576)) * 0.3
    with torch.no_grad():
        ref = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(model.forward(x), ref, rtol=1e-10, atol=1e-12)
    state, probs = model.stream_state(2), []
    for t in range(6):
        p, state = model.stream(x[:, t : t + 1], state)
        probs.append(p)
    np.testing.assert_allclose(np.concatenate(probs, axis=1), ref, rtol=1e-10, atol=1e-12)

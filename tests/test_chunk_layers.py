"""The layers of a chunk front-end that leaves positions (rnncore/nn/chunk.py) against PyTorch: a
small Silero-VAD-v4-shaped model written in torch (STFT by Conv1d, log, adaptive normalisation,
concat, a residual block with a projection, a strided conv leaving 3 positions, an LSTM stepping
over the positions of chunk after chunk, a per-position head, the mean over the positions), and
the same model as an ``rc.nn.Sequential`` of our layers with its weights, chunk by chunk; the
backward of every layer against finite differences (rnncore.gradcheck.check_module), and the
gradients of the whole model against PyTorch autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnncore.gradcheck import check_module
from rnncore.nn import LSTM, MSE, Adam, Linear, ReLU, Sequential, Sigmoid
from rnncore.nn.chunk import (
    ChunkMean,
    ChunkPositions,
    FrameConcat,
    FrameResidual,
    LogAffine,
    SmoothedMeanSubtract,
)
from rnncore.nn.conv import FrameConv1d, Magnitude
from rnncore.nn.train import fit

L, NFFT, HOP, PAD = 64, 16, 8, 8          # 9 STFT positions per chunk
BINS, SM, C, P, H = 9, 3, 8, 3, 6


class _Torch(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)

        def w(*shape, s=0.3):
            return torch.nn.Parameter(torch.randn(*shape, generator=g, dtype=torch.float64) * s)

        self.stft, self.filt = w(2 * BINS, 1, NFFT), w(1, 1, SM, s=0.5)
        self.dw, self.dwb = w(2 * BINS, 1, 3), w(2 * BINS)
        self.pw, self.pwb, self.proj, self.projb = w(C, 2 * BINS, 1), w(C), w(C, 2 * BINS, 1), w(C)
        self.down, self.downb = w(C, C, 1), w(C)
        self.lstm = torch.nn.LSTM(C, H, dtype=torch.float64)
        self.head = torch.nn.Conv1d(H, 1, 1, dtype=torch.float64)

    def forward(self, x, h, c):       # x (1, L): one chunk, as Silero v4's forward
        x = F.pad(x[:, None], (PAD, PAD), mode="reflect")
        z = F.conv1d(x, self.stft, stride=HOP)
        mag = torch.sqrt(z[:, :BINS] ** 2 + z[:, BINS:] ** 2)
        spec = torch.log(mag * 1000.0 + 1.0)
        m = F.pad(spec.mean(dim=1, keepdim=True), (1, 1), mode="reflect")
        norm = spec - F.conv1d(m, self.filt).mean(dim=-1, keepdim=True)
        x1 = torch.cat([mag, norm], dim=1)
        y = torch.relu(F.conv1d(x1, self.dw, self.dwb, padding=1, groups=2 * BINS))
        y = F.conv1d(y, self.pw, self.pwb)
        y = torch.relu(y + F.conv1d(x1, self.proj, self.projb))
        y = torch.relu(F.conv1d(y, self.down, self.downb, stride=3))        # (1, C, P)
        out, (h, c) = self.lstm(y.permute(2, 0, 1), (h, c))                    # over the P positions
        p = torch.sigmoid(self.head(torch.relu(out.permute(1, 2, 0))))       # (1, 1, P)
        return p.mean(dim=2), h, c


def _ours(t: _Torch) -> Sequential:
    def conv(w, b, in_ch, frame, **kw):
        m = FrameConv1d(in_ch, w.shape[0], w.shape[2], frame_length=frame, bias=b is not None, **kw)
        m.params["weight"] = w.detach().numpy().copy()
        if b is not None:
            m.params["bias"] = b.detach().numpy().copy()
        return m

    lstm = LSTM(C, H)
    for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        lstm.params[k] = getattr(t.lstm, k).detach().numpy().copy()
    lin = Linear(H, 1)
    lin.params["weight"] = t.head.weight.detach().numpy()[:, :, 0].copy()
    lin.params["bias"] = t.head.bias.detach().numpy().copy()
    T = (L + 2 * PAD - NFFT) // HOP + 1
    smoother = conv(t.filt, None, 1, T, padding=1, padding_mode="reflect")
    return Sequential(
        conv(t.stft, None, 1, L, stride=HOP, padding=PAD, padding_mode="reflect"), Magnitude(),
        FrameConcat(Sequential(LogAffine(1000.0, 1.0), SmoothedMeanSubtract(BINS, T, smoother))),
        FrameResidual(Sequential(conv(t.dw, t.dwb, 2 * BINS, T, padding=1, groups=2 * BINS), ReLU(),
                                 conv(t.pw, t.pwb, 2 * BINS, T)), conv(t.proj, t.projb, 2 * BINS, T)),
        ReLU(), conv(t.down, t.downb, C, T, stride=3), ReLU(),
        ChunkPositions(C, P), lstm, ReLU(), lin, Sigmoid(), ChunkMean(P))


def test_chunk_layers_match_a_torch_model_chunk_by_chunk():
    t = _Torch()
    model = _ours(t)
    X = np.random.default_rng(1).standard_normal((2, 7, L))            # 2 streams of 7 chunks
    h0 = np.random.default_rng(2).standard_normal((1, 2, H)) * 0.5
    c0 = np.random.default_rng(3).standard_normal((1, 2, H)) * 0.5
    y = model.forward(X, state=[(h0, c0)])
    assert y.shape == (2, 7, 1)
    hN, cN = model.final_states[0]
    st = model.stream_state(2)
    st[8] = (h0, c0)                                                   # the LSTM's entry
    with torch.no_grad():
        for b in range(2):
            h, c = torch.tensor(h0[:, b:b + 1]), torch.tensor(c0[:, b:b + 1])
            for n in range(7):
                p, h, c = t(torch.tensor(X[b, n:n + 1]), h, c)
                np.testing.assert_allclose(y[b, n], p.numpy()[0], rtol=0, atol=1e-12)
            np.testing.assert_allclose(hN[:, b], h.numpy()[:, 0], rtol=0, atol=1e-12)
            np.testing.assert_allclose(cN[:, b], c.numpy()[:, 0], rtol=0, atol=1e-12)
    got = []
    for n in range(7):                                                 # a stream: one chunk per call
        yn, st = model.stream(X[:, n:n + 1], st)
        got.append(yn)
    np.testing.assert_allclose(np.concatenate(got, axis=1), y, rtol=0, atol=1e-12)


def test_chunk_layers_refuse_wrong_shapes_naming_them():
    with pytest.raises(ValueError, match=r"ChunkPositions: x: expected floating frames \(batch, steps, 24\), "
                                         r"got float64 \(1, 2, 23\)"):
        ChunkPositions(8, 3).forward(np.zeros((1, 2, 23)))
    with pytest.raises(ValueError, match=r"ChunkMean: x: expected \(batch, chunks\*3, features\), got "
                                         r"\(1, 4, 2\)"):
        ChunkMean(3).forward(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match=r"SmoothedMeanSubtract: x: expected floating frames \(batch, "
                                         r"steps, 18\), got float64 \(1, 1, 17\)"):
        SmoothedMeanSubtract(2, 9, FrameConv1d(1, 1, 3, frame_length=9)).forward(np.zeros((1, 1, 17)))
    with pytest.raises(ValueError, match=r"smoother: expected a FrameConv1d of one channel over 9 positions"):
        SmoothedMeanSubtract(2, 9, FrameConv1d(1, 1, 3, frame_length=8))
    with pytest.raises(ValueError, match=r"FrameResidual: body gives \(1, 1, 3\), the residual path "
                                         r"\(1, 1, 4\)"):
        FrameResidual(Sequential(Linear(4, 3))).forward(np.zeros((1, 1, 4)))


# -- backward ---------------------------------------------------------------------------------------
RNG = np.random.default_rng(7)


def _smoother(length: int, padding: int) -> FrameConv1d:
    return FrameConv1d(1, 1, 3, frame_length=length, padding=padding, padding_mode="reflect", bias=False,
                       seed=3)


@pytest.mark.parametrize("make, x", [
    (lambda: LogAffine(3.0, 0.5), RNG.uniform(0.1, 2.0, (2, 3, 5))),
    (lambda: LogAffine(1000.0, 1.0), RNG.uniform(0.0, 0.5, (2, 3, 5))),
    (lambda: SmoothedMeanSubtract(3, 7, _smoother(7, 1)), RNG.standard_normal((2, 3, 21))),
    (lambda: SmoothedMeanSubtract(3, 7, _smoother(7, 0)), RNG.standard_normal((2, 3, 21))),   # L_s = 5
    (lambda: FrameConcat(Sequential(FrameConv1d(2, 3, 3, frame_length=5, padding=1, seed=1), Sigmoid())),
     RNG.standard_normal((2, 3, 10))),
    (lambda: FrameResidual(Sequential(FrameConv1d(2, 2, 3, frame_length=5, padding=1, groups=2, seed=1),
                                      Sigmoid(), FrameConv1d(2, 3, 1, frame_length=5, seed=2)),
                           FrameConv1d(2, 3, 1, frame_length=5, seed=4)), RNG.standard_normal((2, 3, 10))),
    (lambda: FrameResidual(FrameConv1d(2, 2, 3, frame_length=5, padding=1, seed=1)),
     RNG.standard_normal((2, 3, 10))),
    (lambda: ChunkPositions(4, 3), RNG.standard_normal((2, 3, 12))),
    (lambda: ChunkMean(3), RNG.standard_normal((2, 9, 4))),
], ids=["log_affine", "log_affine_silero", "smoothed_mean_subtract", "smoothed_mean_subtract_valid",
        "frame_concat", "frame_residual_proj", "frame_residual", "chunk_positions", "chunk_mean"])
def test_chunk_layer_backward_matches_finite_differences(make, x):
    m = make()
    y0 = m.forward(x)
    rep = check_module(m, x)
    assert rep.ok, str(rep)
    assert set(rep.errors) == {"input"} | {k for k, _ in m.named_parameters()}
    np.testing.assert_array_equal(m.forward(x, train=True), y0)      # train=True keeps the output


def test_small_chunk_model_backward_matches_finite_differences():
    """The whole small model from a nonzero state. Its weights are seeded (torch's LSTM/head init
    draws from torch's global generator, whose state depends on what ran before); the central
    differences take eps = 1e-5: with check_module's default 1e-6 rounding leaves 1e-6 relative on
    some seeds' weights, with 1e-5 the error stays below 2e-7 on seeds 0-15."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _ours(_Torch())
    X = np.random.default_rng(4).standard_normal((2, 3, L))
    h0 = np.random.default_rng(5).standard_normal((1, 2, H)) * 0.5
    c0 = np.random.default_rng(6).standard_normal((1, 2, H)) * 0.5
    rep = check_module(model, X, state=[(h0, c0)], eps=1e-5)
    assert rep.ok, str(rep)
    assert len(rep.errors) == 1 + len(list(model.named_parameters()))


_TORCH_NAMES = {"0.weight": "stft", "2.body.1.smoother.weight": "filt", "3.body.0.weight": "dw",
                "3.body.0.bias": "dwb", "3.body.2.weight": "pw", "3.body.2.bias": "pwb",
                "3.proj.weight": "proj", "3.proj.bias": "projb", "5.weight": "down", "5.bias": "downb",
                "8.weight_ih_l0": "lstm.weight_ih_l0", "8.weight_hh_l0": "lstm.weight_hh_l0",
                "8.bias_ih_l0": "lstm.bias_ih_l0", "8.bias_hh_l0": "lstm.bias_hh_l0",
                "10.weight": "head.weight", "10.bias": "head.bias"}


def test_chunk_model_gradients_match_torch_autograd():
    t = _Torch()
    model = _ours(t)
    X = np.random.default_rng(1).standard_normal((2, 4, L))
    h0 = np.random.default_rng(2).standard_normal((1, 2, H)) * 0.5
    c0 = np.random.default_rng(3).standard_normal((1, 2, H)) * 0.5
    R = np.random.default_rng(4).standard_normal((2, 4, 1))          # loss = sum(R * y)
    model.zero_grad()
    y = model.forward(X, state=[(h0, c0)], train=True)
    dx = model.backward(R)
    Xt = torch.tensor(X, requires_grad=True)
    loss = 0
    for b in range(2):
        h, c = torch.tensor(h0[:, b:b + 1]), torch.tensor(c0[:, b:b + 1])
        for n in range(4):
            p, h, c = t(Xt[b, n:n + 1], h, c)
            np.testing.assert_allclose(y[b, n], p.detach().numpy()[0], rtol=0, atol=1e-12)
            loss = loss + (torch.tensor(R[b, n]) * p[0]).sum()
    loss.backward()
    np.testing.assert_allclose(dx, Xt.grad.numpy(), rtol=0, atol=1e-10)
    grads = model.all_grads()
    assert set(grads) == set(_TORCH_NAMES)
    tp = dict(t.named_parameters())
    for ours, theirs in _TORCH_NAMES.items():
        g = tp[theirs].grad.numpy()
        g = g[:, :, 0] if ours == "10.weight" else g
        np.testing.assert_allclose(grads[ours], g, rtol=0, atol=1e-10, err_msg=ours)
        assert np.max(np.abs(g)) > 1e-6, ours                           # every gradient is exercised


def test_chunk_model_fit_lowers_the_loss():
    with torch.random.fork_rng():
        torch.manual_seed(0)                                            # torch's LSTM/head init draws from it
        model = _ours(_Torch())
    rng = np.random.default_rng(8)
    gain = rng.choice([0.1, 1.0], size=(16, 3, 1))                   # quiet or loud chunks
    X = gain * rng.standard_normal((16, 3, L))
    target = (gain > 0.5).astype(np.float64)                          # (16, 3, 1): is the chunk loud
    hist = fit(model, MSE(), Adam(model, lr=0.03), X, target, epochs=20, batch_size=4, metric=None,
               verbose=False)
    assert hist["loss"][-1] < 0.25 * hist["loss"][0], hist["loss"]
    with pytest.raises(ValueError, match=r"lengths: ChunkPositions turns each chunk into P positions"):
        fit(model, MSE(), Adam(model, lr=0.01), X, target, lengths=np.full(16, 3), epochs=1, metric=None,
            verbose=False)


def test_chunk_layers_refuse_lengths_and_backward_without_forward():
    x = np.zeros((2, 4, 6))
    with pytest.raises(ValueError, match=r"lengths: ChunkPositions turns each chunk into P positions, so "
                                         r"per-sequence lengths of its input do not apply to its output"):
        Sequential(ChunkPositions(2, 3), LSTM(2, 4)).forward(x, lengths=np.array([4, 2]))
    with pytest.raises(ValueError, match=r"lengths: ChunkMean turns P positions into one chunk"):
        Sequential(Linear(6, 2), ChunkMean(2)).forward(x, mask=np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool))
    for m in (LogAffine(1.0, 1.0), SmoothedMeanSubtract(2, 3, _smoother(3, 1)),
              FrameConcat(Linear(6, 2)), FrameResidual(Linear(6, 6)), ChunkPositions(2, 3), ChunkMean(2)):
        name = type(m).__name__
        with pytest.raises(RuntimeError, match=rf"{name}\.backward: call forward\(\.\.\., train=True\)"):
            m.backward(np.zeros((2, 4, 6)))
        m.forward(np.ones((2, 4, 6)), train=True)
        with pytest.raises(ValueError, match=rf"{name}\.backward: dy expected shape"):
            m.backward(np.zeros((2, 4, 5)))
        m.forward(np.ones((2, 4, 6)))                                  # inference drops the cache
        with pytest.raises(RuntimeError, match=rf"{name}\.backward: call forward"):
            m.backward(np.zeros((2, 4, 6)))

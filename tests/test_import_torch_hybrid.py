"""from_torch of hybrid models (issue 16): nn.Sequential and plain forward chains of Conv1d,
pooling, BatchNorm1d, LayerNorm, activations, Linear around RNN/GRU/LSTM, read with torch.fx,
against the PyTorch module's own outputs (float32 within 1e-5, float64 within 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnncore.io import from_torch
from rnncore.nn import Sequential

RNG = np.random.default_rng(1603)


class Transpose(nn.Module):
    """What PyTorch users write to put (B, C, T) layers in an nn.Sequential."""

    def forward(self, x):
        return x.transpose(1, 2)


class TakeOutput(nn.Module):
    def forward(self, out):
        return out[0]


class ConvGRU(nn.Module):
    """(B, T, F) -> Conv1d/BN/ReLU/pool in (B, C, T) -> GRU -> LayerNorm -> Linear on the last step."""

    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv1d(6, 8, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm1d(8)
        self.pool = pool
        self.gru = nn.GRU(8, 12, batch_first=True, num_layers=2)
        self.ln = nn.LayerNorm(12)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        z = self.pool(torch.relu(self.bn(self.conv(x.transpose(1, 2))))).permute(0, 2, 1)
        y, _ = self.gru(z)
        return self.fc(self.ln(y)[:, -1])


class TimeMajorLSTM(nn.Module):
    """batch_first=False: the transposes put time first; h_n[-1] as the features."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(5, 7, 2, dilation=2, padding=1)
        self.gru = nn.GRU(7, 9)
        self.fc = nn.Linear(9, 3)

    def forward(self, x):                    # x (B, C, T), PyTorch's conv layout
        z = nn.functional.gelu(self.conv(x)).permute(2, 0, 1)       # (T, B, C)
        _, h = self.gru(z)
        return torch.sigmoid(self.fc(h[-1]))


class MeanPoolBiLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(4)
        self.lstm = nn.LSTM(4, 6, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(nn.Linear(12, 5), nn.Tanh(), nn.Dropout(0.3), nn.Linear(5, 2))

    def forward(self, x):
        y, (h, c) = self.lstm(self.ln(x))
        return self.head(y.mean(1))


def _randomise_bn(net):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _torch_in(x, layout):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(["BTF".index(c) for c in layout])))


def _check(net, layout_in, layout_out, F, dtype="float32", T=(20, 13)):
    if dtype == "float64":
        net = net.double()
    model = from_torch(net, dtype=dtype)
    assert isinstance(model, Sequential)
    assert model.torch_layout == (layout_in, layout_out)
    for B, t in ((2, T[0]), (3, T[1])):
        x = RNG.standard_normal((B, t, F)).astype(dtype)
        with torch.no_grad():
            ref = net(_torch_in(x, layout_in)).numpy()
        if len(layout_out) == 3:
            ref = ref.transpose([layout_out.index(c) for c in "BTF"])
        y = model.forward(x)
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5 if dtype == "float32" else 1e-10)
    return model


@pytest.mark.parametrize("pool", [nn.MaxPool1d(2), nn.AvgPool1d(3, 1, 1),
                                  nn.MaxPool1d(3, 2, 1, ceil_mode=True), nn.Identity()], ids=repr)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_bn_pool_gru_layernorm_head(pool, dtype):
    torch.manual_seed(1)
    model = _check(_randomise_bn(ConvGRU(pool)), "BTF", "BF", 6, dtype)
    kinds = [type(m).__name__ for m in model]
    assert kinds[:3] == ["Conv1d", "BatchNorm1d", "ReLU"]
    assert kinds[-3:] == ["LayerNorm", "LastStep", "Linear"]


def test_channels_first_input_time_major_gru_and_h_n():
    torch.manual_seed(2)
    _check(TimeMajorLSTM().eval(), "BFT", "BF", 5)


def test_layernorm_bilstm_mean_and_nested_sequential_head():
    torch.manual_seed(3)
    _check(MeanPoolBiLSTM().eval(), "BTF", "BF", 4)


def test_plain_sequential_with_transpose_modules_keeps_every_step():
    torch.manual_seed(4)
    net = nn.Sequential(Transpose(), nn.Conv1d(3, 6, 5, padding=2, padding_mode="reflect"), nn.Hardsigmoid(),
                        nn.AvgPool1d(2, 1), Transpose(), nn.LSTM(6, 5, batch_first=True), TakeOutput(),
                        nn.Linear(5, 2), nn.ReLU()).eval()
    model = _check(net, "BTF", "BTF", 3)
    assert [type(m).__name__ for m in model][-2:] == ["Linear", "ReLU"]


def test_sequential_in_pytorchs_own_layout_returns_channels_first():
    torch.manual_seed(5)
    net = _randomise_bn(nn.Sequential(nn.Conv1d(4, 6, 3, stride=2), nn.BatchNorm1d(6), nn.Sigmoid(),
                                      nn.MaxPool1d(2, dilation=2)))
    _check(net, "BFT", "BFT", 4)


def test_embedding_conv_lstm_h_n():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(11, 4)
            self.conv = nn.Conv1d(4, 6, 3, padding="same")
            self.lstm = nn.LSTM(6, 5, batch_first=True, num_layers=2)
            self.fc = nn.Linear(5, 2)

        def forward(self, ids):
            z = torch.tanh(self.conv(self.emb(ids).transpose(1, 2))).transpose(1, 2)
            _, (h, c) = self.lstm(z)
            return self.fc(h[-1])

    torch.manual_seed(6)
    net = Tokens().double().eval()
    model = from_torch(net)
    assert model.torch_layout == ("BT", "BF")
    ids = RNG.integers(0, 11, (3, 9))
    with torch.no_grad():
        ref = net(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(model.forward(ids), ref, rtol=0, atol=1e-10)


def test_what_the_chain_cannot_express_is_refused_by_name():
    class ConvLnGru(nn.Module):   # the layers; each subclass wires them in a way the chain cannot
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 4, 3, padding=1)
            self.ln = nn.LayerNorm(4)
            self.gru = nn.GRU(4, 4, batch_first=True)

    class TwoBranches(ConvLnGru):   # f(x) + g(x): not a residual x + f(x)
        def forward(self, x):
            z = self.conv(x.transpose(1, 2)).transpose(1, 2) + self.ln(x)
            return self.gru(z)[0]

    class MissingTranspose(ConvLnGru):
        def forward(self, x):
            return self.gru(self.ln(self.conv(x)))[0]

    class Unknown(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 4, 3)
            self.up = nn.Upsample(scale_factor=2)

        def forward(self, x):
            return self.up(self.conv(x))

    with pytest.raises(ValueError, match=r"node 'ln'.*reads the data of an earlier point of the chain"):
        from_torch(TwoBranches())
    with pytest.raises(ValueError, match=r"node 'ln'.*features on the last axis.*\('B', 'F', 'T'\)"):
        from_torch(MissingTranspose())
    with pytest.raises(ValueError, match=r"'up' of type torch.nn.modules.upsampling.Upsample; supported: nn"):
        from_torch(Unknown())
    with pytest.raises(ValueError, match="track_running_stats"):
        from_torch(nn.Sequential(nn.Conv1d(2, 3, 1), nn.BatchNorm1d(3, track_running_stats=False)))


def test_leakyrelu_and_elu_import_and_compile_within_1e5_of_torch():
    # nn.LeakyReLU / nn.ELU with their own parameters become rc.nn.LeakyReLU / ELU per-step records
    import rnncore as rc

    torch.manual_seed(6)
    net = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.GRU(6, 5, batch_first=True), TakeOutput(),
                        nn.ELU(0.7), nn.Linear(5, 3), nn.ELU()).eval()
    model = _check(net, "BTF", "BTF", 4)
    acts = [m for m in model if type(m).__name__ in ("LeakyReLU", "ELU")]
    assert [(type(m).__name__, m.alpha) for m in acts] == [("LeakyReLU", 0.2), ("ELU", 0.7), ("ELU", 1.0)]
    x = RNG.standard_normal((3, 9, 4)).astype(np.float32) * 2
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert (ref < 0).any()
    np.testing.assert_allclose(rc.compile(model).run(x), ref, rtol=0, atol=1e-5)


class _Funcs(nn.Module):
    """The element-wise functions as calls: F.hardtanh, torch.clamp (one bound), F.silu, F.softplus,
    F.softsign, F.hardswish."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.rnn, self.b = nn.Linear(4, 6), nn.GRU(6, 5, batch_first=True), nn.Linear(5, 5)
        self.c = nn.Linear(5, 3)

    def forward(self, x):
        y = torch.nn.functional.hardtanh(self.a(x), -0.5, 0.75)
        y = torch.nn.functional.silu(self.rnn(y)[0])
        y = torch.clamp(self.b(y), min=-0.2)
        y = torch.nn.functional.softplus(y, beta=2.0, threshold=1.0)
        return torch.nn.functional.hardswish(self.c(torch.nn.functional.softsign(y)))


def test_hardtanh_silu_hardswish_softplus_softsign_import_and_compile_within_1e5_of_torch():
    # modules and functions become rc.nn.Hardtanh / SiLU / Hardswish / Softplus / Softsign records
    import rnncore as rc

    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU6(), nn.Hardtanh(-0.5, 0.25), nn.GRU(6, 5, batch_first=True),
                        TakeOutput(), nn.SiLU(), nn.Linear(5, 5), nn.Hardswish(), nn.Softplus(2.0, 1.0),
                        nn.Linear(5, 3), nn.Softsign()).eval()
    model = _check(net, "BTF", "BTF", 4)
    got = [(type(m).__name__, m.record().get("alpha"), m.record().get("beta")) for m in model
           if type(m).__name__ in ("Hardtanh", "ReLU6", "SiLU", "Hardswish", "Softplus", "Softsign")]
    assert got == [("Hardtanh", 0.0, 6.0), ("Hardtanh", -0.5, 0.25), ("SiLU", None, None),
                   ("Hardswish", None, None), ("Softplus", 2.0, 1.0), ("Softsign", None, None)], got
    x = RNG.standard_normal((3, 9, 4)).astype(np.float32) * 3
    for module in (net, _Funcs().eval()):
        m = model if module is net else from_torch(module)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(m.forward(x.astype(np.float64)), ref, rtol=0, atol=1e-5)
        np.testing.assert_allclose(rc.compile(m).run(x), ref, rtol=0, atol=1e-5)

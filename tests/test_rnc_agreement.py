"""The Python ``.rnc`` reader and the C loader agree: same verdict, same status, same one line
naming the part and the field, on every mutated file of tests/rnc_mutations.py (docs/rnc-format.md,
"What the loader checks"). Both format their refusals from rnc_layout.h's RNC_MESSAGES."""

from __future__ import annotations

import collections
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from child_env import child_env
from rnc_mutations import INT_SEEDS, all_mutations, fix_crc, seed_files

import rnncore as rc
from rnncore import _engine
from rnncore.io.rnc import RncFormatError, check_rnc, read_rnc, write_rnc
from rnncore.io.rnc_layout import LAYOUT

# rnc_status codes of rnncore.h by the status names of rnc_layout.h's messages
STATUS = {2: "MAGIC", 3: "VERSION", 4: "TRUNCATED", 5: "CHECKSUM", 6: "CORRUPT", 7: "UNSUPPORTED"}


HIT: collections.Counter = collections.Counter()  # RNC_MESSAGES entries the mutations reach


def _python(b: bytes):
    try:
        check_rnc(b)   # read_rnc's checks, and the engine's refusal of valid integer files
    except RncFormatError as e:
        HIT[e.message] += 1
        return e.status, e.detail
    return None


def _c(b: bytes):
    try:
        _engine.Model(b)
    except ValueError as e:
        return STATUS.get(e.status, e.status), e.detail
    return None


def test_seed_files_are_valid_for_both():
    for name, data in seed_files().items():
        if name in INT_SEEDS:   # fully-integer: read_rnc reads it and the engine runs it
            assert read_rnc(data)["precision"] == "int8", name
        assert _python(data) is None and _c(data) is None, name


def test_reader_and_loader_agree_on_every_mutated_file():
    """Byte flips, 32-bit field edits, NaN/-128 tensor values, truncations (checksum fixed so
    the parser is reached) over 12 models covering f32/q8, strided time layers, GRU both forms,
    LSTM, RNN tanh/relu, embedding, heads, last-step pooling both forms, bidirectional, versions 1
    and 2, and 3 fully-integer models (precision 3: GRU both forms and activation families, LSTM, RNN ReLU,
    a stack, the integer head)."""
    total, refused, differ = 0, 0, []
    HIT.clear()
    for seed, what, b in all_mutations():
        total += 1
        py = _python(b)
        c = _c(b) if b else ("TRUNCATED", py[1] if py else None)  # the engine refuses b"" itself
        if py != c:
            differ.append((seed, what, py, c))
        elif py is not None:
            refused += 1
    assert not differ, f"{len(differ)} of {total} mutated files disagree, e.g. {differ[:3]}"
    assert total > 20000 and 0.5 * total < refused < total, (total, refused)
    # the mutations reach most checks (the rest: limits no small file reaches, big-endian hosts,
    # and two per-step checks one edit cannot reach: a 65th per-step record, and an odd width
    # before a magnitude -- the record before it then no longer fits its tensors;
    # tests/test_engine_frontend.py reaches the latter; LEFT_OUT exists only in builds without
    # optional kernel groups: tests/test_c_core.py reaches it; INT_S16_BOUND needs a row of
    # hundreds of inputs: tests/test_rnc_int.py reaches it in both, as it does INT_SCALE_MAX; the
    # 16 x 16 frame_conv's weight checks Q16_MIN / Q16_PAD: no seed here has such a record,
    # tests/test_engine_front_q16.py reaches both in both loaders; HALVES_ODD, an odd width before
    # a mul_halves record, as MAG_ODD: tests/test_keras_merge.py reaches it in both; ATTN_INT, the
    # attention flag in an integer file: its 48-byte record holds float tensors no integer seed has,
    # and the writer refuses to write one, so no edit here or elsewhere reaches it yet; PW_PARAM, a
    # pointwise hardtanh's or softplus' parameters: no seed has such a record,
    # tests/test_engine_front_q8.py reaches it in both; SEQ_NORM_SPAN / SEQ_NORM_PAD, a residual over
    # an instance_norm and a padded record over time in its model: one edit reaches neither,
    # tests/test_engine_pyannet.py reaches both in both, as it does POS_SEQ_NORM, positions after an
    # instance_norm: no seed has both; EMB_SEQ_NORM, an instance_norm after an embedding: no seed has
    # an embedding and per-step records, tests/test_engine_emb_front.py reaches it in both)
    unreached = sorted(set(LAYOUT.messages) - set(HIT) - {"LEFT_OUT", "INT_S16_BOUND", "INT_SCALE_MAX",
                                                           "Q16_MIN", "Q16_PAD", "HALVES_ODD", "PW_PARAM",
                                                           "SEQ_NORM_SPAN", "SEQ_NORM_PAD", "POS_SEQ_NORM",
                                                           "EMB_SEQ_NORM"})
    assert len(unreached) <= 14, unreached


def test_refusals_name_the_field_in_c_and_python():
    rng = np.random.default_rng(0)
    w = {"weight_ih": rng.standard_normal((15, 3)), "weight_hh": rng.standard_normal((15, 5))}
    data = write_rnc({"precision": "f32", "input_size": 3, "layers": [{"kind": "gru", "weights": w}]})
    rec = 64  # the recurrent record follows the v2 header
    b = bytearray(data)
    struct.pack_into("<I", b, rec + 48 + 8 + 4, 999)  # dir0.w_hh nbytes
    want = "record 0 (recurrent, layer 0): dir0.w_hh: tensor of 999 bytes, expected 960"
    bad = fix_crc(b)
    with pytest.raises(RncFormatError, match=re.escape(want)) as e:
        check_rnc(bad)
    assert e.value.status == "CORRUPT"
    with pytest.raises(ValueError, match=rf"inconsistent model file .*: {re.escape(want)} \(rnc_status 6\)"):
        rc.load(bad)
    b = bytearray(data)
    struct.pack_into("<I", b, rec + 48 + 8, 2048)  # dir0.w_hh offset past the end
    with pytest.raises(ValueError, match=r"dir0.w_hh: offset 2048 \+ 960 bytes past the end of the file "
                                         rf"\({len(data)} bytes\)"):
        rc.load(fix_crc(b))


def test_export_c_of_a_bad_file_is_one_line_naming_the_field(tmp_path):
    rng = np.random.default_rng(1)
    w = {"weight_ih": rng.standard_normal((4, 2)), "weight_hh": rng.standard_normal((4, 4))}
    spec = {"precision": "f32", "input_size": 2, "layers": [{"kind": "rnn", "weights": w}]}
    data = bytearray(write_rnc(spec))
    struct.pack_into("<I", data, 64 + 20, 0)  # hidden_size 0
    (tmp_path / "bad.rnc").write_bytes(fix_crc(data))
    argv = [sys.executable, "-m", "rnncore", "export-c", str(tmp_path / "bad.rnc"), "-o",
            str(tmp_path / "bad.c")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=child_env())
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "bad.rnc: not a valid .rnc model: inconsistent model file" in r.stderr
    assert "record 0 (recurrent, layer 0): hidden_size: 0, expected 1..65536" in r.stderr, r.stderr
    assert not (tmp_path / "bad.c").exists()


def test_every_message_is_described_once_with_a_known_status():
    assert set(m.status for m in LAYOUT.messages.values()) <= set(STATUS.values())
    assert LAYOUT.messages["REF_PAST_END"].format(1280, 960, 2048) == (
        "offset 1280 + 960 bytes past the end of the file (2048 bytes)")


def test_the_largest_model_has_room_for_every_tensor():
    """16 bidirectional q8 layers (6 tensors per direction + W_hh's kernel sums), an embedding and
    a head: 212 tensors. The loader's tensor table once held 196 and refused this valid file."""
    import gen_vectors

    spec = gen_vectors.make_spec(np.random.default_rng(0), "gru", [3] + [2] * 16, "q8", bidirectional=True,
                                 embedding=4, head=2)
    data = write_rnc(spec)
    assert _python(data) is None and _c(data) is None
    assert rc.load(data).run(np.zeros((1, 2), np.int32)).shape == (1, 2, 2)

"""The .rnc writer/reader: round trips, the q8 weight quantisation, the packing, hostile bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncore.io.rnc import (
    RECORD_KINDS,
    pack_f32,
    pack_q8,
    quantize_rows,
    read_rnc,
    unpack_f32,
    unpack_q8,
    write_rnc,
)
from rnncore.io.rnc_layout import LAYOUT

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def make_spec(rng, kind="gru", sizes=((3, 5),), bidirectional=False, precision="f32", head=None,
              embedding=None, nonlinearity="tanh", reset_after=True):
    layers = []
    feat = sizes[0][0]
    for li, (_, h) in enumerate(sizes):
        g = GATES[kind]
        w = {}
        for suf in ([""] + (["_reverse"] if bidirectional else [])):
            w[f"weight_ih_l{li}{suf}"] = rng.standard_normal((g * h, feat)).astype(np.float32)
            w[f"weight_hh_l{li}{suf}"] = rng.standard_normal((g * h, h)).astype(np.float32)
            w[f"bias_ih_l{li}{suf}"] = rng.standard_normal(g * h).astype(np.float32)
            w[f"bias_hh_l{li}{suf}"] = rng.standard_normal(g * h).astype(np.float32)
        layers.append({"kind": kind, "bidirectional": bidirectional, "weights": w,
                       "nonlinearity": nonlinearity, "reset_after": reset_after})
        feat = h * (2 if bidirectional else 1)
    spec = {"precision": precision, "layers": layers, "input_size": sizes[0][0]}
    if head:
        spec["head"] = {"weight": rng.standard_normal((head, feat)).astype(np.float32),
                        "bias": rng.standard_normal(head).astype(np.float32), "activation": "tanh"}
    if embedding:
        spec["embedding"] = {"weight": rng.standard_normal((embedding, sizes[0][0])).astype(np.float32)}
    return spec


def direct_quant(w):
    """Straight from docs/q8-contract.md, row by row, in float32 scalars."""
    w = np.asarray(w, np.float32)
    q = np.zeros(w.shape, np.int8)
    s = np.zeros(w.shape[0], np.float32)
    for r in range(w.shape[0]):
        m = np.float32(np.max(np.abs(w[r])))
        s[r] = m / np.float32(127)
        if m == 0:
            continue
        for k in range(w.shape[1]):
            q[r, k] = int(np.clip(np.rint(np.float32(w[r, k] / s[r])), -127, 127))
    return q, s


@settings(max_examples=30, deadline=None)
@given(r=st.integers(1, 20), k=st.integers(1, 20), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e30]))
def test_quantize_rows_matches_direct(r, k, seed, scale):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((r, k)) * scale).astype(np.float32)
    w[rng.random((r, k)) < 0.1] = 0
    if r > 1:
        w[0] = 0  # an all-zero row
    q, s = quantize_rows(w)
    q2, s2 = direct_quant(w)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(s, s2)
    assert q.min() >= -127 and q.max() <= 127
    assert s.dtype == np.float32


def test_quantize_rounds_half_to_even():
    # max 127 -> scale 1 exactly, so w / s = w: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0
    w = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -127.0]], np.float32)
    q, s = quantize_rows(w)
    assert s[0] == 1.0
    assert q.tolist() == [[127, 0, 2, 2, 0, -2, -127]]


def test_pack_layouts_index_formulas():
    rng = np.random.default_rng(1)
    rp, kp = 32, 12
    w = rng.integers(-127, 128, (rp, kp)).astype(np.int8)
    p = pack_q8(w)
    for b in range(rp // 16):
        for g in range(kp // 4):
            for r in range(16):
                for j in range(4):
                    assert p[(b * kp // 4 + g) * 64 + r * 4 + j] == w[16 * b + r, 4 * g + j]
    np.testing.assert_array_equal(unpack_q8(p, rp, kp), w)
    wf = rng.standard_normal((rp, 7)).astype(np.float32)
    pf = pack_f32(wf)
    for b in range(rp // 16):
        for k in range(7):
            for r in range(16):
                assert pf[(b * 7 + k) * 16 + r] == wf[16 * b + r, k]
    np.testing.assert_array_equal(unpack_f32(pf, rp, 7), wf)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("precision", ["f32", "q8"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_round_trip(kind, precision, bidirectional):
    rng = np.random.default_rng(zlib.crc32(f"{kind}{precision}{bidirectional}".encode()))
    spec = make_spec(rng, kind, sizes=((3, 5), (0, 17)), bidirectional=bidirectional,
                     precision=precision, head=4, embedding=9)
    data = write_rnc(spec)
    assert data[:4] == b"RNCM"
    assert struct.unpack_from("<I", data, 12)[0] == zlib.crc32(data[16:])
    back = read_rnc(data)
    assert back["precision"] == precision
    assert back["output_size"] == 4
    np.testing.assert_array_equal(back["embedding"]["weight"], spec["embedding"]["weight"])
    for li, (lw, lb) in enumerate(zip(spec["layers"], back["layers"], strict=True)):
        assert lb["kind"] == kind and lb["bidirectional"] == bidirectional
        for name, w in lw["weights"].items():
            short = name.replace(f"_l{li}", "")
            got = lb["weights"][short]
            if precision == "f32" or name.startswith("bias"):
                np.testing.assert_array_equal(got, w)
            else:
                q, s = direct_quant(w)
                np.testing.assert_array_equal(lb["qweights"][short], q)
                np.testing.assert_array_equal(lb["scales"][short], s)
                np.testing.assert_array_equal(got, q.astype(np.float32) * s[:, None])
    head = back["head"]
    assert head["activation"] == "tanh"
    np.testing.assert_array_equal(head["bias"], spec["head"]["bias"])
    if precision == "q8":
        q, s = direct_quant(spec["head"]["weight"])
        np.testing.assert_array_equal(head["qweight"], q)
        np.testing.assert_array_equal(head["scale"], s)
    else:
        np.testing.assert_array_equal(head["weight"], spec["head"]["weight"])


def _first_cellw(data: bytes) -> int:
    """Offset of layer 0's direction-0 tensor references, found through the layout."""
    if LAYOUT["hdr1"].unpack(data)["version"] == 1:
        return LAYOUT["hdr1"].size + LAYOUT["desc1"].fields["dir0"].offset
    pos = LAYOUT["hdr2"].size
    while LAYOUT["rec"].unpack(data, pos)["kind"] != RECORD_KINDS["recurrent"]:
        pos += LAYOUT["rec"].unpack(data, pos)["size"]
    return pos + LAYOUT.constants["REC_RECURRENT_DIR0"]


@pytest.mark.parametrize("version", [1, 2])
def test_tensors_aligned_and_padding_zero(version):
    rng = np.random.default_rng(3)
    data = write_rnc(make_spec(rng, "lstm", sizes=((3, 5),), precision="q8"), version=version)
    refs = LAYOUT["cellw"].unpack(data, _first_cellw(data))
    for off, n in refs.values():
        assert off % 64 == 0 and n > 0 and off + n <= len(data)
    # w_hh of the LSTM: 4 gates x 16 rows x round4(5)=8 inputs; rows 5..15 of each gate are zero
    off = refs["w_hh"][0]
    wq = unpack_q8(np.frombuffer(data, np.int8, 64 * 8, off), 64, 8)
    for g in range(4):
        assert not wq[g * 16 + 5:(g + 1) * 16].any()
    assert not wq[:, 5:].any()


def test_bad_inputs_raise():
    rng = np.random.default_rng(4)
    spec = make_spec(rng, "gru")
    spec["layers"][0]["weights"]["weight_hh_l0"] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError):
        write_rnc(spec)
    spec = make_spec(rng, "gru")
    spec["layers"][0]["weights"]["weight_ih_l0"][0, 0] = np.nan
    with pytest.raises(ValueError):
        write_rnc(spec)
    with pytest.raises(ValueError):
        write_rnc({**make_spec(rng, "gru"), "precision": "i4"})
    with pytest.raises(ValueError):
        write_rnc(make_spec(rng, "rnn", nonlinearity="sigmoid"))
    good = write_rnc(make_spec(rng, "gru"))
    with pytest.raises(ValueError):
        read_rnc(good[:-1])
    bad = bytearray(good)
    bad[200] ^= 1
    with pytest.raises(ValueError):
        read_rnc(bytes(bad))
    bad = bytearray(good)
    bad[4] = 3
    with pytest.raises(ValueError, match="header: version: 3 "):
        read_rnc(bytes(bad))
    with pytest.raises(ValueError, match="version"):
        write_rnc(make_spec(rng, "gru"), version=3)
    with pytest.raises(ValueError):
        read_rnc(b"XXXX" + good[4:])


def test_static_scales_and_pooling_round_trip():
    rng = np.random.default_rng(5)
    spec = make_spec(rng, "gru", sizes=((3, 5),), bidirectional=True, precision="q8", head=2)
    spec["layers"][0]["x_scale"] = 0.25
    spec["layers"][0]["h_scale"] = [0.01, 0.02]
    spec["head"]["in_scale"] = 0.5
    spec["last_step"] = True
    spec["last_step_bidirectional"] = True
    back = read_rnc(write_rnc(spec))
    assert back["last_step"] and back["last_step_bidirectional"]
    layer = back["layers"][0]
    assert layer["x_scale"] == np.float32(0.25)
    assert layer["h_scale"] == [np.float32(0.01), np.float32(0.02)]
    assert back["head"]["in_scale"] == 0.5
    spec["precision"] = "f32"
    with pytest.raises(ValueError):
        write_rnc(spec)  # static scales exist only in q8 files


@pytest.mark.parametrize("version", [1, 2])
def test_reader_rejects_mutations_with_value_error(version):
    """Random byte mutations (half with the checksum fixed so parsing goes deep): the reader
    either returns a description or raises ValueError, nothing else."""
    rng = np.random.default_rng(6)
    data = write_rnc(make_spec(rng, "lstm", sizes=((3, 5), (0, 7)), bidirectional=True, precision="q8",
                               head=3, embedding=4), version=version)
    outcomes = {"ok": 0, "ValueError": 0}
    for it in range(400):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(0, 256 if it % 2 else len(b)))] = int(rng.integers(0, 256))
        if it % 3:
            struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])))
        try:
            read_rnc(bytes(b))
            outcomes["ok"] += 1
        except ValueError:
            outcomes["ValueError"] += 1
    assert outcomes["ValueError"] > 100


# ----------------------------------------------------------------------------------------------
# the layout description (csrc/src/rnc_layout.h) and format version 2
# ----------------------------------------------------------------------------------------------
def _c_compiler():
    import shutil
    import sysconfig

    cc = (sysconfig.get_config_var("CC") or "").split()
    for cand in ([cc[0]] if cc else []) + ["cc", "gcc", "clang"]:
        if shutil.which(cand):
            return shutil.which(cand)
    return None


def test_layout_python_parse_equals_the_c_preprocessor(tmp_path):
    """Compile rnc_layout.h and print, through its X-macros and generated accessors, every structure
    size, field offset/type, constant, and the header fields of a v1 and a v2 file: all must be
    what the Python parser and unpacker see."""
    import subprocess

    cc = _c_compiler()
    if cc is None:
        pytest.skip("no C compiler")
    consts = "\n".join(f'    printf("C {k} %llu\\n", (unsigned long long)(RNC_{k}));'
                       for k in sorted(LAYOUT.constants))

    def dump(struct_name, var):
        lines = []
        for f in LAYOUT[struct_name].fields.values():
            acc = f"rnc_{struct_name}_{f.name}({var})"
            if f.type == "U32":
                lines.append(f'    printf("V {struct_name} {f.name} %u\\n", (unsigned){acc});')
            elif f.type == "F32":
                lines.append(f'    printf("V {struct_name} {f.name} %.9g\\n", (double){acc});')
            elif f.type == "REF":
                lines.append(f'    printf("V {struct_name} {f.name} %u %u\\n", '
                             f'(unsigned)rnc_ref_offset({acc}), (unsigned)rnc_ref_nbytes({acc}));')
        return "\n".join(lines)

    src = f"""
#include <stdio.h>
#include <stdlib.h>
#include "rnc_layout.h"
#define P_S(s, n) printf("S %s %u %u\\n", #s, (unsigned)(n), (unsigned)RNC_SIZE_##s);
#define P_F(s, f, off, t) \\
    printf("X %s %s %u %s %u\\n", #s, #f, (unsigned)(off), #t, (unsigned)RNC_AT_##s##_##f);
static unsigned char buf[1 << 16];
static void load(const char *path) {{
    FILE *fp = fopen(path, "rb");
    if (!fp || fread(buf, 1, sizeof buf, fp) == 0) exit(2);
    fclose(fp);
}}
int main(int argc, char **argv) {{
    (void)argc;
    RNC_LAYOUT_STRUCTS(P_S)
    RNC_LAYOUT_ALL_FIELDS(P_F)
{consts}
    load(argv[1]);
{dump("hdr1", "buf")}
    load(argv[2]);
{dump("hdr2", "buf")}
{dump("rec_recurrent", "buf + RNC_SIZE_hdr2")}
    return 0;
}}
"""
    (tmp_path / "t.c").write_text(src)
    inc = LAYOUT.path.parent
    exe = tmp_path / "t"
    subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{inc}", str(tmp_path / "t.c"),
                    "-o", str(exe)], check=True, capture_output=True)
    rng = np.random.default_rng(9)
    spec = make_spec(rng, "gru", sizes=((3, 5),), bidirectional=True, precision="q8", head=2)
    spec["layers"][0]["x_scale"] = 0.125
    spec["head"]["in_scale"] = 0.75
    (tmp_path / "v1.rnc").write_bytes(write_rnc(spec, version=1))
    (tmp_path / "v2.rnc").write_bytes(write_rnc(spec, version=2))
    out = subprocess.run([str(exe), str(tmp_path / "v1.rnc"), str(tmp_path / "v2.rnc")], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    c_structs = {ln.split()[1]: (int(ln.split()[2]), int(ln.split()[3])) for ln in out if ln[0] == "S"}
    assert c_structs == {n: (s.size, s.size) for n, s in LAYOUT.structs.items()}
    c_fields = sorted((p[1], p[2], int(p[3]), p[4], int(p[5])) for p in (ln.split() for ln in out)
                      if p[0] == "X")
    py_fields = sorted((s.name, f.name, f.offset, f.type, f.offset) for s in LAYOUT.structs.values()
                       for f in s.fields.values())
    assert c_fields == py_fields
    c_consts = {p[1]: int(p[2]) for p in (ln.split() for ln in out) if p[0] == "C"}
    assert c_consts == LAYOUT.constants
    # values read by the C accessors == values unpacked by Python, for both versions' headers
    data = {"hdr1": (tmp_path / "v1.rnc").read_bytes(), "hdr2": (tmp_path / "v2.rnc").read_bytes()}
    data["rec_recurrent"] = data["hdr2"]
    base = {"hdr1": 0, "hdr2": 0, "rec_recurrent": LAYOUT["hdr2"].size}
    seen = 0
    for p in (ln.split() for ln in out):
        if p[0] != "V":
            continue
        want = LAYOUT[p[1]].unpack(data[p[1]], base[p[1]])[p[2]]
        got = tuple(int(v) for v in p[3:]) if isinstance(want, tuple) else (
            float(p[3]) if isinstance(want, float) else int(p[3]))
        assert got == want, (p[1], p[2])
        seen += 1
    assert seen == sum(1 for n in ("hdr1", "hdr2", "rec_recurrent") for f in LAYOUT[n].fields.values()
                       if f.type != "CELLW")


def test_layout_fields_do_not_overlap_and_fit():
    for s in LAYOUT.structs.values():
        spans = sorted((f.offset, f.offset + f.size, f.name) for f in s.fields.values())
        for (_, e0, a), (o1, _, b) in zip(spans, spans[1:], strict=False):
            assert o1 >= e0, f"{s.name}: {a} and {b} overlap"
        assert all(e <= s.size for _, e, _ in spans), s.name
        assert all(f.offset % 4 == 0 for f in s.fields.values()), s.name
    # records: every record structure starts with the common prefix (kind, size)
    for name in ("rec_embedding", "rec_recurrent", "rec_last_step", "rec_linear"):
        f = LAYOUT[name].fields
        assert (f["kind"].offset, f["size"].offset) == (0, 4) and LAYOUT[name].size % 8 == 0


def _records(data: bytes) -> list[tuple[int, int, int]]:
    h = LAYOUT["hdr2"].unpack(data)
    pos, out = LAYOUT["hdr2"].size, []
    for _ in range(h["num_records"]):
        r = LAYOUT["rec"].unpack(data, pos)
        out.append((pos, r["kind"], r["size"]))
        pos += r["size"]
    return out


def test_v2_is_an_ordered_list_of_self_sizing_records():
    rng = np.random.default_rng(10)
    spec = make_spec(rng, "lstm", sizes=((3, 5), (0, 7)), bidirectional=True, precision="f32", head=3,
                     embedding=4)
    spec["last_step"] = True
    data = write_rnc(spec)
    h = LAYOUT["hdr2"].unpack(data)
    assert (h["magic"], h["version"], h["header_size"], h["input_size"], h["flags"]) == (
        0x4D434E52, 2, 64, 0, 0)  # input 0: token ids
    recs = _records(data)
    k = RECORD_KINDS
    # docs/rnc-format.md: embedding 24 bytes, recurrent 48 + 48 per direction, last_step 16, linear 48
    assert [(kind, size) for _, kind, size in recs] == [
        (k["embedding"], 24), (k["recurrent"], 144), (k["recurrent"], 144), (k["last_step"], 16),
        (k["linear"], 48)]
    assert h["records_size"] == sum(size for _, _, size in recs)
    first_tensor = min(off for pos, kind, _ in recs if kind == k["recurrent"]
                       for off, n in LAYOUT["cellw"].unpack(data, pos + 48).values() if n)
    assert first_tensor >= 64 + h["records_size"] and first_tensor % 64 == 0


def _edited(data: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    b = bytearray(data)
    for off, val in edits:
        b[off:off + len(val)] = val
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def test_v2_reader_refuses_unknown_kinds_wrong_order_and_broken_records():
    rng = np.random.default_rng(11)
    spec = make_spec(rng, "gru", sizes=((3, 5),), precision="q8", head=2)
    spec["last_step"] = True
    data = write_rnc(spec)
    recs = _records(data)  # recurrent, last_step, linear
    u32 = lambda v: struct.pack("<I", v)  # noqa: E731
    (r0, _, s0), (r1, _, s1), (r2, k2, s2) = recs
    with pytest.raises(ValueError, match=r"record 2: kind: kind 77 \(unknown\) cannot come after last_step"):
        read_rnc(_edited(data, [(r2, u32(77))]))
    swapped = data[r1:r1 + s1]
    with pytest.raises(ValueError, match=r"record 2: kind: kind 3 \(last_step\) cannot come after linear"):
        # linear before last_step
        read_rnc(_edited(data, [(r1, data[r2:r2 + s2]), (r1 + s2, swapped)]))
    with pytest.raises(ValueError, match="record 0: size: 4, expected a multiple of 8"):
        read_rnc(_edited(data, [(r0 + 4, u32(4))]))
    no_pool = write_rnc({**spec, "last_step": False})
    (_, _, _), (lin, _, _) = _records(no_pool)
    # a last_step record of the wrong size (flags 0: 16 bytes; the attention flag 0x4 asks for 48)
    with pytest.raises(ValueError, match=r"record 1 \(last_step\): size: 48, expected 16"):
        read_rnc(_edited(no_pool, [(lin, u32(RECORD_KINDS["last_step"])), (lin + 8, u32(0))]))
    with pytest.raises(ValueError, match=r"record 1 \(last_step\): reserved: byte 12 of the 16-byte "
                                         "structure is 0x1"):
        read_rnc(_edited(data, [(r1 + 12, u32(1))]))
    with pytest.raises(ValueError, match=r"record 0 \(recurrent, layer 0\): dir0.b_hh: bytes .* overlap "
                                         r"record 0 \(recurrent, layer 0\): dir0.b_ih"):  # b_hh := b_ih
        cw = r0 + 48  # direction 0's cellw; b_ih at +32, b_hh at +40
        read_rnc(_edited(data, [(cw + 40, data[cw + 32:cw + 40])]))
    with pytest.raises(ValueError, match="header: input_size: 0 without an embedding record"):
        read_rnc(_edited(data, [(24, u32(0))]))
    with pytest.raises(ValueError, match="header: num_records: 0, expected 1"):
        read_rnc(_edited(data, [(28, u32(0))]))
    assert k2 == RECORD_KINDS["linear"]
    read_rnc(_edited(data, []))  # the untouched file reads


@pytest.mark.parametrize("bidirectional", [False, True])
def test_v2_q8_files_carry_w_hh_kernel_sums_that_reader_and_loader_check(bidirectional):
    """docs/rnc-format.md: a q8 recurrent record's w_hh_sums hold sum_k Wq_hh[r, k] for every
    padded row of each direction (int32); f32 records have none. A wrong sum is refused by the
    Python reader (naming the field and row) and by the C loader."""
    import rnncore as rc

    rng = np.random.default_rng(3)
    spec = make_spec(rng, "lstm", sizes=((6, 19),), bidirectional=bidirectional, precision="q8")
    data = write_rnc(spec)
    pos, kind, _ = _records(data)[0]
    assert kind == RECORD_KINDS["recurrent"]
    off, n = LAYOUT["rec_recurrent"].unpack(data, pos)["w_hh_sums"]
    d = read_rnc(data)["layers"][0]
    hp = 32  # round16(19)
    sums = np.frombuffer(data, "<i4", n // 4, off).reshape(-1, 4, hp)
    for k, sfx in enumerate(["", "_reverse"][: 1 + bidirectional]):
        wq = d["qweights"]["weight_hh" + sfx].astype(np.int64).reshape(4, 19, 19)
        np.testing.assert_array_equal(sums[k, :, :19], wq.sum(axis=2))
        assert not sums[k, :, 19:].any()  # padding rows
    bad = _edited(data, [(off + 4 * 5, struct.pack("<i", int(sums[0, 0, 5]) + 1))])
    want = rf"record 0 \(recurrent, layer 0\): w_hh_sums: direction 0 row 5 is {int(sums[0, 0, 5]) + 1}"
    with pytest.raises(ValueError, match=want):
        read_rnc(bad)
    with pytest.raises(ValueError, match="inconsistent model file .*: " + want):
        rc.load(bad)
    f32 = write_rnc(make_spec(rng, "lstm", sizes=((6, 19),), precision="f32"))
    assert LAYOUT["rec_recurrent"].unpack(f32, _records(f32)[0][0])["w_hh_sums"] == (0, 0)

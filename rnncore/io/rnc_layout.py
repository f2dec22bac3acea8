"""The ``.rnc`` byte layout, read from the C core's own description ``csrc/src/rnc_layout.h``.

That header lists every structure (``S(name, size)``), every field (``X(struct, field, offset,
TYPE)``), the format's constants (``#define RNC_NAME value``: sizes, flags, record kinds and the
value ranges the loader accepts) and the loader's refusals (``M(NAME, STATUS, "text")``); the C
loader reads fields through accessors generated from it and this module packs and unpacks with the
same table, so the two cannot disagree about an offset, a limit or the text of an error.
``tests/test_rnc_format.py`` compiles the header and checks that the C preprocessor sees exactly
the table parsed here.

The header is found next to this module (wheels carry a copy, see ``setup.py``) or in the source
tree's ``csrc/src``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
CANDIDATES = (_HERE / "rnc_layout.h", _HERE.parents[1] / "csrc" / "src" / "rnc_layout.h")

TYPE_SIZES = {"U32": 4, "F32": 4, "F64": 8, "REF": 8, "CELLW": 48}

_STRUCT_RE = re.compile(r"\bS\((\w+),\s*(\d+)\)")
_FIELD_RE = re.compile(r"\bX\((\w+),\s*(\w+),\s*(\d+),\s*(U32|F32|F64|REF|CELLW)\)")
_CONST_RE = re.compile(r"^#define\s+RNC_(\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\b", re.M)
_MSG_RE = re.compile(r'^\s+M\((\w+),\s*(\w+),\s*"((?:[^"\\]|\\.)*)"\)', re.M)
_C_DIRECTIVES = {"%llu": "%d", "%lld": "%d", "%llx": "%x", "%s": "%s"}


@dataclass(frozen=True)
class Field:
    """One field of a structure: ``name`` at byte ``offset``, of ``type`` U32/F32/F64/REF/CELLW."""

    name: str
    offset: int
    type: str

    @property
    def size(self) -> int:
        return TYPE_SIZES[self.type]


@dataclass(frozen=True)
class Struct:
    """A structure of ``size`` bytes; bytes no field names are reserved (zero)."""

    name: str
    size: int
    fields: dict[str, Field]

    def pack(self, **values: Any) -> bytes:
        """The structure's bytes: named fields set (U32 int, F32 float, REF ``(offset, nbytes)``,
        CELLW ``bytes`` of 48), every other byte zero.

        Raises
        ------
        KeyError
            for a name that is not a field of this structure.
        """
        out = bytearray(self.size)
        for key, val in values.items():
            f = self.fields.get(key)
            if f is None:
                raise KeyError(f"{self.name} has no field {key!r} (fields: {sorted(self.fields)})")
            if f.type == "U32":
                struct.pack_into("<I", out, f.offset, int(val))
            elif f.type == "F32":
                struct.pack_into("<f", out, f.offset, float(val))
            elif f.type == "F64":
                struct.pack_into("<d", out, f.offset, float(val))
            elif f.type == "REF":
                struct.pack_into("<II", out, f.offset, int(val[0]), int(val[1]))
            else:
                if len(val) != f.size:
                    raise ValueError(f"{self.name}.{key}: expected {f.size} bytes, got {len(val)}")
                out[f.offset:f.offset + f.size] = val
        return bytes(out)

    def unpack(self, data: bytes, base: int = 0) -> dict[str, Any]:
        """Every field of the structure at ``data[base:]``: U32 int, F32 float, REF
        ``(offset, nbytes)``, CELLW the sub-structure's offset in ``data`` (int)."""
        out: dict[str, Any] = {}
        for f in self.fields.values():
            at = base + f.offset
            if f.type == "U32":
                out[f.name] = struct.unpack_from("<I", data, at)[0]
            elif f.type == "F32":
                out[f.name] = struct.unpack_from("<f", data, at)[0]
            elif f.type == "F64":
                out[f.name] = struct.unpack_from("<d", data, at)[0]
            elif f.type == "REF":
                out[f.name] = struct.unpack_from("<II", data, at)
            else:
                out[f.name] = at
        return out

    def reserved_nonzero(self, data: bytes, base: int = 0) -> list[int]:
        """Offsets (relative) of reserved bytes that are not zero."""
        named = set()
        for f in self.fields.values():
            named.update(range(f.offset, f.offset + f.size))
        return [i for i in range(self.size) if i not in named and data[base + i] != 0]


@dataclass(frozen=True)
class Message:
    """One refusal of the loader: its status (``"CORRUPT"``, ``"TRUNCATED"``, ... the
    ``RNC_E_<status>`` of ``rnncore.h``) and its text (C directives ``%llu %lld %llx %s``)."""

    name: str
    status: str
    text: str

    def format(self, *args: Any) -> str:
        """The text with ``args`` in order, exactly as the C loader prints it."""
        py = re.sub(r"%ll[udx]|%s", lambda m: _C_DIRECTIVES[m.group(0)], self.text)
        return py % args


@dataclass(frozen=True)
class Layout:
    """Every structure, constant and loader message of ``rnc_layout.h``."""

    structs: dict[str, Struct]
    constants: dict[str, int]
    path: Path
    messages: dict[str, Message]

    def __getitem__(self, name: str) -> Struct:
        return self.structs[name]


def parse(text: str, path: Path | None = None) -> Layout:
    """Parse the text of ``rnc_layout.h`` (see its header comment for the rules).

    Raises
    ------
    ValueError
        on a field of an undeclared structure, a duplicate, or a field past its structure's end.
    """
    sizes = {m.group(1): int(m.group(2)) for m in _STRUCT_RE.finditer(text)}
    fields: dict[str, dict[str, Field]] = {name: {} for name in sizes}
    for m in _FIELD_RE.finditer(text):
        s, name, off, typ = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        if s not in sizes:
            raise ValueError(f"rnc_layout.h: field {s}.{name} of an undeclared structure {s!r}")
        if name in fields[s]:
            raise ValueError(f"rnc_layout.h: field {s}.{name} declared twice")
        f = Field(name, off, typ)
        if off + f.size > sizes[s]:
            raise ValueError(f"rnc_layout.h: {s}.{name} ends at {off + f.size}, past the structure's "
                             f"size {sizes[s]}")
        fields[s][name] = f
    consts = {m.group(1): int(m.group(2), 0) for m in _CONST_RE.finditer(text)}
    structs = {name: Struct(name, size, fields[name]) for name, size in sizes.items()}
    messages = {m.group(1): Message(m.group(1), m.group(2), m.group(3).replace('\\"', '"'))
                for m in _MSG_RE.finditer(text)}
    return Layout(structs, consts, path or Path("<text>"), messages)


def load() -> Layout:
    """The layout of the first ``rnc_layout.h`` found in :data:`CANDIDATES`.

    Raises
    ------
    FileNotFoundError
        when none exists (a broken install).
    """
    for p in CANDIDATES:
        if p.is_file():
            return parse(p.read_text(), p)
    raise FileNotFoundError(f"rnc_layout.h not found (looked in {', '.join(map(str, CANDIDATES))})")


LAYOUT = load()


def v2_records(data: bytes) -> list[tuple[int, int, int]]:
    """``(kind, offset, size)`` of each record of a version 2 file, in file order; ``[]`` for a
    version 1 file. No checks: for a file a reader has accepted (``read_rnc``, ``rc.load``)."""
    hdr, rec = LAYOUT["hdr2"], LAYOUT["rec"]
    head = hdr.unpack(data)
    if head["version"] != 2:
        return []
    out, pos = [], hdr.size
    for _ in range(head["num_records"]):
        r = rec.unpack(data, pos)
        out.append((r["kind"], pos, r["size"]))
        pos += r["size"]
    return out

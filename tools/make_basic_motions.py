"""Build ``rnncore/data/basic_motions.npz`` from the BasicMotions ``.ts`` files.

The ``.ts`` files are the UEA multivariate time-series classification archive's BasicMotions
(the copy that ``sktime``'s wheel bundles under ``sktime/datasets/data/BasicMotions/``;
``pip download --no-deps sktime==0.34.0`` and unzip, nothing installed)::

    python tools/make_basic_motions.py DIR_WITH_TS_FILES [-o rnncore/data/basic_motions.npz]

The values have at most six decimals and are stored exactly as int32 counts of 1e-6, as
``tools/make_japanese_vowels.py`` does (``value = stored / 1e6`` is the float64 of the decimal
text). Arrays in the ``.npz`` (no pickles):

* ``{split}_values`` (N, 100, 6) int32: every recording, 100 steps of 6 channels (3-axis
  accelerometer, then 3-axis gyroscope, in the file's channel order)
* ``{split}_labels`` (N,) int8: index into ``classes``
* ``classes`` (4,) str: the labels as the ``.ts`` files declare them
  (``Standing Running Walking Badminton``)
* ``scale`` () float64: 1e6
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_japanese_vowels import write_npz  # noqa: E402


def pack(seqs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every recording as (N, 100, 6)."""
    values = np.stack(seqs)
    assert values.shape[1:] == (100, 6) and np.abs(values).max() < 2**31
    return {"values": values.astype(np.int32)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ts_dir", help="directory with BasicMotions_TRAIN.ts and BasicMotions_TEST.ts")
    p.add_argument("-o", "--output", default=os.path.join("rnncore", "data", "basic_motions.npz"))
    args = p.parse_args()
    write_npz(args.ts_dir, "BasicMotions", args.output, pack)

if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Convert DAVIS 2016/2017 (``JPEGImages/480p``, ``Annotations/480p``) to the YouTube-VOS
layout with a meta.json, as a training split or (``--heldout``) as a held-out split with
first-appearance ``Annotations`` and full ``GroundTruth``.

    python data_scripts/davis_to_ytvos.py --davis /data/DAVIS --out /data/davis-ytvos \
        --split valid --heldout
"""

import argparse
import sys
from pathlib import Path

from vostutorial.data.convert import davis_to_ytvos


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--davis", type=Path, required=True, help="DAVIS root holding JPEGImages/")
    p.add_argument("--out", type=Path, required=True, help="dataset root to write <split>/ into")
    p.add_argument("--split", default="train")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--category", default="object", help="category given to every object")
    p.add_argument("--heldout", action="store_true", help="first appearances + GroundTruth")
    a = p.parse_args()
    try:
        out = davis_to_ytvos(a.davis, a.out, a.split, a.resolution, a.category, a.heldout)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

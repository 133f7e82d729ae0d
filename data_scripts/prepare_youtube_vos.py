#!/usr/bin/env python
"""Prepare a downloaded YouTube-VOS for the kit: verify it, optionally resize it, and carve a
local held-out split out of ``train`` (held-out videos of seen categories, and categories held
out entirely as unseen), written like the synthetic valid split: ``Annotations`` with first
appearances only and ``GroundTruth`` with every mask, so J and F seen/unseen can be scored
locally (the official valid ground truth lives only on the evaluation server).

    python data_scripts/prepare_youtube_vos.py --root /data/youtube-vos --out /data/ytvos-local
    vostutorial evaluate --pred PRED --data /data/ytvos-local --split heldout
"""

import argparse
import sys
from pathlib import Path

from vostutorial.data.check import check_split
from vostutorial.data.convert import carve_heldout


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, required=True, help="YouTube-VOS root holding train/")
    p.add_argument(
        "--out", type=Path, required=True, help="where to write train/ and the held-out split"
    )
    p.add_argument(
        "--heldout-videos", type=int, default=200, help="videos of seen categories held out"
    )
    p.add_argument("--unseen-categories", type=int, default=10, help="categories held out entirely")
    p.add_argument("--heldout-name", default="heldout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--height", type=int, default=None, help="resize frames and masks to this height"
    )
    p.add_argument("--link", action="store_true", help="hard-link frames instead of copying them")
    p.add_argument(
        "--verify", action="store_true", help="decode and check every file of train first"
    )
    a = p.parse_args()
    try:
        if a.verify:
            problems, summary = check_split(a.root, "train")
            if problems:
                print("\n".join(problems), file=sys.stderr)
                print(
                    f"{len(problems)} problem(s) in {a.root}/train; fix them first", file=sys.stderr
                )
                return 1
            print("train ok: {videos} videos, {objects} objects, {frames} frames".format(**summary))
        info = carve_heldout(
            a.root,
            a.out,
            a.heldout_videos,
            a.unseen_categories,
            a.seed,
            a.height,
            a.link,
            a.heldout_name,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {a.out}/train ({info['train_videos']} videos) and {a.out}/{a.heldout_name} "
        f"({info['heldout_videos']} videos, {info['heldout_seen_videos']} of seen categories only)"
    )
    print(f"unseen categories: {', '.join(info['unseen_categories']) or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

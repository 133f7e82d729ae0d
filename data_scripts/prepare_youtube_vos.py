#!/usr/bin/env python
"""Prepare a downloaded YouTube-VOS: verify it, optionally resize it, and carve a local
held-out split out of ``train`` (seen and unseen categories): `vostutorial convert heldout`.

    python data_scripts/prepare_youtube_vos.py --root /data/youtube-vos --out /data/ytvos-local
    vostutorial evaluate --pred PRED --data /data/ytvos-local --split heldout
"""

import sys

from vostutorial.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", "heldout", *sys.argv[1:]]))

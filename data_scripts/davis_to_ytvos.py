#!/usr/bin/env python
"""Convert DAVIS 2016/2017 to the YouTube-VOS layout: `vostutorial convert davis`.

    python data_scripts/davis_to_ytvos.py --davis /data/DAVIS --out /data/davis-ytvos \
        --split valid --heldout
"""

import sys

from vostutorial.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", "davis", *sys.argv[1:]]))

#!/usr/bin/env python
"""Generate the synthetic YouTube-VOS dataset (same as `vostutorial synth`)."""

import sys

from vostutorial.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))

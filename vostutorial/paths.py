"""Where the project's files are: the one place that knows.

- training configs: ``vostutorial/configs/*.toml``, package data (a ``pip install .`` has them)
- the shipped checkpoint, default dataset, runs and reports: in a checkout (``make setup``
  installs it editable) its ``checkpoints/``, ``data/synthetic``, ``runs/`` and ``results/``;
  in any other install ``~/.cache/vostutorial/``. ``VOSTUTORIAL_DATA`` moves the dataset.

Imports nothing of the package: everything may use it.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE / "configs"


def _home() -> Path:
    checkout = PACKAGE.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.home() / ".cache" / "vostutorial"


HOME = _home()  # the checkout, or the cache folder
# The shipped model: `make train-tiny` trains it (configs/tiny.toml), `shipped` finds it.
SHIPPED_CHECKPOINT = HOME / "checkpoints" / "tiny-synthetic.pt"
WEIGHTS_CACHE = HOME / "weights"  # pretrained VGG16 converted once (models.pretrained)
RUNS = HOME / "runs"
RESULTS = HOME / "results"


def default_data() -> Path:
    """The built-in synthetic dataset's folder: ``$VOSTUTORIAL_DATA`` if set, else
    ``data/synthetic`` (in a checkout) or ``~/.cache/vostutorial/data/synthetic``."""
    if os.environ.get("VOSTUTORIAL_DATA"):
        return Path(os.environ["VOSTUTORIAL_DATA"])
    return HOME / "data" / "synthetic"


def real_davis() -> Path:
    """Real DAVIS 2016 sequences shared beside the checkout, for evaluation only (never trained
    or tuned on, never copied in): ``$VOSTUTORIAL_REAL_SAMPLES/davis2016``, else
    ``../shared/real-samples/davis2016``. Tests and benchmarks skip or say so where absent."""
    shared = (
        os.environ.get("VOSTUTORIAL_REAL_SAMPLES")
        or PACKAGE.parent.parent / "shared" / "real-samples"
    )
    return Path(shared) / "davis2016"

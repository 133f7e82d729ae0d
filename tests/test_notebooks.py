"""The committed notebooks are a course: each opens with its goals and measured run time, closes
with a summary and a link to the next, and is committed executed without saved widget state."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("0*.ipynb"))


def _text(cells, kind):
    return ["".join(c["source"]) for c in cells if c["cell_type"] == kind]


def test_the_seven_notebooks_are_there_in_order():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_without_widget_state(path):
    nb = json.loads(path.read_text())
    # ipywidgets' saved state is hundreds of KB of metadata; widgets render when run anyway
    assert "widgets" not in nb["metadata"], (
        f"{path.name} carries saved widget state: re-execute it with "
        "--ExecutePreprocessor.store_widget_state=False (make notebooks-executed)"
    )
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    unrun = [i for i, c in enumerate(code) if c["execution_count"] is None]
    assert not unrun, f"{path.name}: code cells {unrun} were not executed before committing"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), (
        f"{path.name} was not executed top to bottom in one go"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_goals_and_run_time_and_closes_with_a_summary(path):
    md = "\n".join(_text(json.loads(path.read_text())["cells"], "markdown"))
    goals = re.search(r"## What you will learn\n((?:\d\. .*\n)+)", md)
    assert goals and 3 <= len(goals.group(1).splitlines()) <= 5, f"{path.name}: 3-5 goals"
    assert "**Builds on:**" in md, f"{path.name}: say what it builds on"
    # a measured figure, e.g. "**Runs in** 41 seconds on 2 CPU cores"
    assert re.search(r"\*\*Runs in\*\* \d+ seconds on 2 CPU cores", md), (
        f"{path.name}: state the run time measured by `make notebooks-executed`"
    )
    for part in ("## Summary", "**Try next:**", "**Further reading:**"):
        assert part in md, f"{path.name}: missing {part}"
    assert re.search(r"arXiv:? ?\d{4}\.\d{4,5}", md), f"{path.name}: cite papers by arXiv id"
    if path != NOTEBOOKS[-1]:
        nxt = NOTEBOOKS[NOTEBOOKS.index(path) + 1].name
        assert f"]({nxt})" in md, f"{path.name}: link to the next notebook, {nxt}"

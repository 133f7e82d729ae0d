"""Student versions of the notebooks: ``make student`` (``vostutorial student``).

In the reference notebooks, a code cell tagged ``solution`` holds an exercise's answer; its
leading comment lines state the exercise. The student copy (``notebooks/student/``) keeps those
lines and replaces the code with a ``# TODO`` stub; cells tagged ``check`` (asserts on shapes
and values) stay as they are, so students know when they got it right. Outputs are cleared.
CI checks that the copies are in sync and that the reference notebooks pass every check.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import write_text

STUB = '# TODO: your code here\nraise NotImplementedError("exercise")'


def student_cell(cell: dict) -> dict:
    """The student version of one cell (a new dict)."""
    cell = json.loads(json.dumps(cell))
    cell.get("metadata", {}).pop("execution", None)  # run timestamps of the reference
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
        if "solution" in cell.get("metadata", {}).get("tags", []):
            lines = "".join(cell["source"]).splitlines()
            text = []
            for line in lines:
                if not line.startswith("#"):
                    break
                text.append(line)
            cell["source"] = "\n".join(text + [STUB])
            cell["metadata"]["tags"] = ["exercise"]
    return cell


def student_notebook(reference: dict) -> dict:
    nb = json.loads(json.dumps(reference))
    nb["cells"] = [student_cell(c) for c in nb["cells"]]
    nb["metadata"].pop("widgets", None)
    return nb


def render(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def write_student_notebooks(notebooks: Path, out: Path | None = None) -> list[Path]:
    """Write ``out/<name>`` for every reference notebook with at least one solution cell."""
    out = out or notebooks / "student"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(notebooks.glob("*.ipynb")):
        ref = json.loads(path.read_text())
        if not any("solution" in c.get("metadata", {}).get("tags", []) for c in ref["cells"]):
            continue
        target = out / path.name
        write_text(target, render(student_notebook(ref)))
        written.append(target)
    return written

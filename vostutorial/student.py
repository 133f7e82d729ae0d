"""Student versions of the notebooks: ``make student`` (``vostutorial student``).

In the reference notebooks, a code cell tagged ``solution`` holds an exercise's answer: its
leading comment lines state the exercise, then one function is defined. The student copy
(``notebooks/student/``) keeps the comments and the function's signature and replaces its body
with a ``# TODO`` stub that raises ``NotImplementedError`` when called; cells tagged ``check``
(`vostutorial.exercises`) stay as they are and report an unfinished exercise instead of
stopping *Run All*. Outputs are cleared. CI checks that the copies are in sync and that every
check passes on the reference, not on the stub, and not on wrong answers kept in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import write_text

STUB = '    # TODO: your code here\n    raise NotImplementedError("exercise")'


def student_cell(cell: dict) -> dict:
    """The student version of one cell (a new dict)."""
    cell = json.loads(json.dumps(cell))
    cell.get("metadata", {}).pop("execution", None)  # run timestamps of the reference
    if cell["cell_type"] == "code":
        cell["outputs"], cell["execution_count"] = [], None
        if "solution" in cell.get("metadata", {}).get("tags", []):
            cell["source"] = "\n".join(stub_lines("".join(cell["source"])) + [STUB])
            cell["metadata"]["tags"] = ["exercise"]
    return cell


def stub_lines(solution: str) -> list[str]:
    """The lines of a solution cell a student sees: the leading comments and the ``def`` up to
    the colon that ends its signature (the body goes)."""
    lines = solution.splitlines()
    keep = 0
    while keep < len(lines) and lines[keep].startswith("#"):
        keep += 1
    if keep == len(lines) or not lines[keep].startswith("def "):
        raise ValueError(
            f"a solution cell must define one function after its comments:\n{solution}"
        )
    while not lines[keep].rstrip().endswith(":"):
        keep += 1
    return lines[: keep + 1]


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

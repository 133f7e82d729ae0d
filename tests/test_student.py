import json
from pathlib import Path

from vostutorial.student import STUB, render, student_notebook, write_student_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_student_copies_are_in_sync_with_the_reference():
    refs = [
        p
        for p in sorted(NOTEBOOKS.glob("*.ipynb"))
        if any("solution" in _tags(c) for c in json.loads(p.read_text())["cells"])
    ]
    assert {p.name for p in refs} >= {
        "02_convlstm_building_blocks.ipynb",
        "04_training.ipynb",
        "05_inference_and_merging.ipynb",
        "06_evaluation.ipynb",
    }
    for ref in refs:
        student = NOTEBOOKS / "student" / ref.name
        assert student.exists(), f"{student} missing: run `make student`"
        expected = render(student_notebook(json.loads(ref.read_text())))
        assert student.read_text() == expected, f"{student} is stale: run `make student`"


def test_solutions_become_stubs_and_checks_stay(tmp_path):
    for ref in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(ref.read_text())["cells"]
        student = student_notebook(json.loads(ref.read_text()))["cells"]
        for i, (a, b) in enumerate(zip(cells, student, strict=True)):
            if "solution" in _tags(a):
                src = "".join(a["source"])
                assert "".join(b["source"]).endswith(STUB)
                assert (
                    src.splitlines()[0].startswith("# Exercise")
                    and src.splitlines()[0] in b["source"]
                )
                assert "check" in _tags(cells[i + 1]), f"{ref.name}: solution without a check"
                assert src.splitlines()[-1] not in "".join(b["source"])  # the answer is gone
            elif "check" in _tags(a):
                assert a["source"] == b["source"]
    written = write_student_notebooks(NOTEBOOKS, tmp_path)
    assert len(written) >= 4

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vostutorial import exercises
from vostutorial.student import STUB, render, student_notebook, write_student_notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def _exercises() -> dict[str, tuple[str, str, str]]:
    """``{function name: (check name, reference source, student source)}`` over all notebooks."""
    out = {}
    for ref in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(ref.read_text())["cells"]
        student = student_notebook(json.loads(ref.read_text()))["cells"]
        for i, cell in enumerate(cells):
            if "solution" in _tags(cell):
                src = "".join(cell["source"])
                name = re.search(r"^def (\w+)\(", src, re.M).group(1)
                check = re.search(r"(check_\w+)\(" + name + r"\)", "".join(cells[i + 1]["source"]))
                assert check, f"{ref.name}: the cell after {name} must call check_...({name})"
                out[name] = (check.group(1), src, "".join(student[i]["source"]))
    return out


def _define(src: str):
    """The function a cell defines, with what solutions may use."""
    ns = {"np": np, "torch": torch, "math": math}
    exec(src, ns)
    return ns[re.search(r"^def (\w+)\(", src, re.M).group(1)]


# Plausible wrong answers, one or a tuple per exercise, each one a student might write: every
# check must catch each.
WRONG = {
    "my_first_appearances": lambda ids: {
        int(k): int(np.argmax((ids == k).any(axis=(1, 2)))) + 1 for k in np.unique(ids) if k
    },  # off by one frame
    "my_convlstm_step": lambda gates, x, h, c: (
        lambda zi, zf, zg, zo: (
            torch.sigmoid(zo)
            * torch.tanh(torch.sigmoid(zi) * c + torch.sigmoid(zf) * torch.tanh(zg)),
            torch.sigmoid(zi) * c + torch.sigmoid(zf) * torch.tanh(zg),
        )
    )(*gates(torch.cat([x, h], 1)).chunk(4, 1)),  # i and f swapped
    "my_unroll": lambda step, xs, state: [step(x, state)[0] for x in xs],  # state not carried
    "my_receptive_field": lambda layers: 1 + sum(k - 1 for k, _ in layers),  # strides forgotten
    "my_balanced_bce": lambda z, y: (
        2
        * (
            torch.where(
                y > 0.5,
                1 - y.mean(dim=(1, 2, 3, 4), keepdim=True),
                y.mean(dim=(1, 2, 3, 4), keepdim=True),
            )
            * torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
        ).mean()
    ),  # the clamp forgotten
    "my_lr_factor": lambda step, warmup, steps, min_lr: (
        step / warmup
        if step < warmup
        else min_lr
        + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
    ),  # warm-up off by one: 0 at step 0
    "my_merge": lambda p, ids: np.concatenate([[0], ids])[
        np.concatenate([np.full_like(p[:1], 0.5), p]).argmax(0)
    ],  # threshold rule, not the product background
    "my_soft_aggregate": lambda p: (lambda q: q / q.sum(0, keepdims=True))(
        np.concatenate([np.prod(1 - p, axis=0, keepdims=True), p])
    ),  # probabilities, not odds
    "my_blend": (
        lambda probs, vote, s: {  # the share on the wrong side
            o: s * probs[o] + (1 - s) * vote[:, j] for j, o in enumerate(sorted(probs), 1)
        },
        lambda probs, vote, s: {  # the background channel taken for the first object
            o: (1 - s) * probs[o] + s * vote[:, j] for j, o in enumerate(sorted(probs))
        },
        lambda probs, vote, s: {  # channels in the dict's order, not ascending ids
            o: (1 - s) * probs[o] + s * vote[:, j] for j, o in enumerate(probs, 1)
        },
    ),
    "my_override": (
        lambda labels, given: (
            [labels.__setitem__((slice(None), m), oid) for oid, (t, m) in given.items()] and labels
        ),  # painted on every frame
        lambda labels, given: (
            [labels[t].__setitem__(m, oid) for oid, (t, m) in given.items()] and labels
        ),  # painted, but the object's predicted pixels outside the mask kept
    ),
    "my_scored_frames": lambda t, n, score_first=False: list(range(t, n)),  # given frame scored
    "my_jaccard": lambda pred, gt: (
        (pred & gt).sum(axis=(1, 2)) / np.maximum((pred | gt).sum(axis=(1, 2)), 1)
    ),  # both empty gives 0, not 1
    "my_f": lambda p, r: (p + r) / 2,  # arithmetic mean
}


def test_every_exercise_check_passes_the_reference_not_the_stub_nor_a_wrong_answer(capsys):
    found = _exercises()
    assert len(found) >= 10, f"{len(found)} exercises"
    assert set(found) == set(WRONG), "keep one plausible wrong answer per exercise in WRONG"
    for name, (check_name, ref, student) in found.items():
        check = getattr(exercises, check_name)
        assert check(_define(ref)) is True, f"{name}: the reference fails {check_name}"
        assert check(_define(student)) is False, f"{name}: the stub is not reported as not done"
        assert "not done yet" in capsys.readouterr().out
        wrong = WRONG[name] if isinstance(WRONG[name], tuple) else (WRONG[name],)
        for answer in wrong:
            with pytest.raises(AssertionError):
                check(answer)


def test_checks_do_not_call_the_library_function_asked_for():
    """The checks import nothing of the kit: their answers are written out, not computed by
    the function the exercise asks for."""
    src = Path(exercises.__file__).read_text()
    imports = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    assert imports and not [ln for ln in imports if "vostutorial" in ln or ln.startswith("from .")]


def test_student_copies_are_in_sync_with_the_reference():
    refs = [
        p
        for p in sorted(NOTEBOOKS.glob("*.ipynb"))
        if any("solution" in _tags(c) for c in json.loads(p.read_text())["cells"])
    ]
    assert len(refs) == 6  # every notebook has exercises
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
                src, stub = "".join(a["source"]), "".join(b["source"])
                assert stub.endswith(STUB)
                assert src.splitlines()[0].startswith("# Exercise") and src.splitlines()[0] in stub
                assert "check" in _tags(cells[i + 1]), f"{ref.name}: solution without a check"
                assert src.splitlines()[-1] not in stub  # the answer is gone
            elif "check" in _tags(a):
                assert a["source"] == b["source"]
    written = write_student_notebooks(NOTEBOOKS, tmp_path)
    assert len(written) == 6


def test_check_cells_call_the_answer_only_once_it_passed():
    """A stub must not stop *Run All*: outside ``check_x(my_x)`` a check cell uses ``my_x``
    only in the block of ``if check_x(my_x):``."""
    for ref in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(ref.read_text())["cells"]
        for i, cell in enumerate(cells):
            if "solution" not in _tags(cell):
                continue
            name = re.search(r"^def (\w+)\(", "".join(cell["source"]), re.M).group(1)
            guarded = False
            for line in "".join(cells[i + 1]["source"]).splitlines():
                if re.match(rf"if check_\w+\({name}\):", line):
                    guarded = True
                elif line and not line.startswith(" "):
                    guarded = False
                uses = re.sub(rf"check_\w+\({name}\)", "", line)
                assert guarded or f"{name}(" not in uses, f"{ref.name}: {line!r} runs the stub"

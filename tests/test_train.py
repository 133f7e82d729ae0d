import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest
import torch
from helpers import SMALL_TRAIN, run_kit

from vostutorial.checkpoint import export_model, load_checkpoint, load_model, training_loss
from vostutorial.data import YTVOSSplit
from vostutorial.data.sampler import StepSampler
from vostutorial.losses import balanced_bce, bce, bce_iou, lovasz_hinge
from vostutorial.models import build_model
from vostutorial.paths import CONFIG_DIR, SHIPPED_CHECKPOINT
from vostutorial.train import lr_factor, validate
from vostutorial.train_config import load_config


def _train(root, out, *args, torchrun=0, wait=True):
    """``vostutorial train`` on the small settings; on ``torchrun`` processes, or started
    without waiting for it (a `Popen`)."""
    args = ["train", "--data", root, "--out", out, "--device", "cpu", *SMALL_TRAIN, *args]
    if wait and not torchrun:
        return run_kit(*args, check=True)
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    cmd = [sys.executable, *(launcher if torchrun else []), "-m", "vostutorial", *map(str, args)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_balanced_bce_by_hand():
    targets = torch.zeros(1, 1, 1, 4, 4)
    targets[..., :1, :] = 1  # 4 of 16 pixels: fg fraction 1/4
    logits = torch.zeros_like(targets)  # every pixel's BCE is log 2
    # fg pixels weigh 3/4, bg pixels 1/4: mean weight 3/8, times 2
    assert balanced_bce(logits, targets).item() == pytest.approx(0.75 * math.log(2))
    half = torch.zeros(1, 1, 1, 2, 2)
    half[..., 0, :] = 1
    z = torch.randn(1, 1, 1, 2, 2)
    assert balanced_bce(z, half).item() == pytest.approx(bce(z, half).item())  # fg = 1/2


def test_balanced_bce_gives_both_classes_equal_total_weight():
    targets = torch.zeros(1, 1, 1, 10, 10)
    targets[..., :2, :5] = 1  # 10 % foreground
    logits = torch.zeros_like(targets, requires_grad=True)
    balanced_bce(logits, targets).backward()
    g = logits.grad
    assert g[targets > 0].abs().sum().item() == pytest.approx(g[targets == 0].abs().sum().item())


def test_bce_iou_counts_a_painted_distractor_like_a_miss():
    target = torch.zeros(1, 1, 1, 10, 10)
    target[..., :2, :5] = 1  # the object: 10 pixels
    distractor = torch.zeros_like(target)
    distractor[..., 5:7, :5] = 1  # another object of the same size
    sure = lambda m: torch.where(m > 0, 30.0, -30.0)  # noqa: E731 - confident logits
    assert bce_iou(sure(target), target).item() == pytest.approx(0, abs=1e-6)
    both = bce_iou(sure(target + distractor), target) - bce(sure(target + distractor), target)
    half = target.clone()
    half[..., 1, :] = 0  # misses 5 of the 10 pixels
    missed = bce_iou(sure(half), target) - bce(sure(half), target)
    assert both.item() == pytest.approx(1 - 11 / 21)  # IoU term: 10 / 20, smoothed
    assert missed.item() == pytest.approx(1 - 6 / 11)  # IoU term: 5 / 10, smoothed
    empty = torch.zeros_like(target)  # an absent object, nothing painted: only BCE remains
    assert bce_iou(sure(empty), empty).item() == pytest.approx(0, abs=1e-6)


def test_lovasz_hinge_is_the_jaccard_loss_of_the_thresholded_mask():
    target = torch.zeros(1, 1, 1, 10, 10)
    target[..., :2, :5] = 1  # the object: 10 pixels
    unit = lambda m: torch.where(m > 0, 1.0, -1.0)  # noqa: E731 - margin 0 right, 2 wrong
    assert lovasz_hinge(unit(target), target).item() == pytest.approx(0)
    painted = target.clone()
    painted[..., 5:9, :5] = 1  # 20 false positives: J = 10 / 30
    half = target.clone()
    half[..., 1, :] = 0  # 5 of the 10 pixels missed: J = 5 / 10
    assert lovasz_hinge(unit(painted), target).item() == pytest.approx(2 * (1 - 10 / 30))
    assert lovasz_hinge(unit(half), target).item() == pytest.approx(2 * (1 - 5 / 10))
    # all logits 0: every hinge is 1 and the weights add up to a Jaccard loss of 1
    assert lovasz_hinge(torch.zeros_like(target), target).item() == pytest.approx(1)
    empty = torch.zeros_like(target)  # no object: only the worst false positive counts
    logits = -torch.ones_like(target)
    logits[..., 0, 0] = 0.5
    assert lovasz_hinge(logits, empty).item() == pytest.approx(1.5)


def test_lr_schedule_warms_up_then_decays():
    cfg = replace(load_config("tiny"), steps=100, warmup=10, min_lr=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(55, cfg) == pytest.approx(0.55)
    assert lr_factor(100, cfg) == pytest.approx(0.1)


def test_loss_switches_to_plain_bce_after_bce_from():
    from vostutorial.train import loss_at

    tiny = load_config("tiny")
    assert loss_at(replace(tiny, loss="balanced"), 500) is balanced_bce
    cfg = replace(tiny, loss="balanced", bce_from=300)
    assert loss_at(cfg, 300) is balanced_bce and loss_at(cfg, 301) is bce


def test_step_sampler_is_a_function_of_seed_and_step():
    whole = list(StepSampler(50, 4, seed=1, start=0, stop=6))
    assert list(StepSampler(50, 4, seed=1, start=3, stop=6)) == whole[3:]
    halves = [list(StepSampler(50, 4, seed=1, start=0, stop=6, rank=r, world=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*halves, strict=True)] == whole
    assert whole != list(StepSampler(50, 4, seed=2, start=0, stop=6))
    with pytest.raises(ValueError, match="divide evenly"):
        StepSampler(50, 3, 0, 0, 1, world=2)


def test_configs_load_and_bad_ones_are_clear(tmp_path):
    assert load_config("tiny").model == "tiny"
    assert load_config("paper").size == (256, 448)
    with pytest.raises(ValueError, match="config not found"):
        load_config("nope")
    from vostutorial.paths import CONFIG_DIR

    tiny = (CONFIG_DIR / "tiny.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(tiny + "learning_rate = 1\n")
    with pytest.raises(ValueError, match=r"unknown settings \['learning_rate'\]"):
        load_config(str(bad))
    # a setting missing from the file is an error naming it, never a hidden default
    bad.write_text("\n".join(ln for ln in tiny.splitlines() if not ln.startswith("warmup")))
    with pytest.raises(ValueError, match=r"bad.toml: missing settings \['warmup'\]"):
        load_config(str(bad))


def test_run_writes_log_config_and_checkpoint(synth_root, tmp_path):
    _train(
        synth_root,
        tmp_path / "run",
        "--steps",
        "4",
        "--set",
        "val_every=2",
        "--export",
        str(tmp_path / "w.pt"),
    )
    log = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in log)
    # validation scored the weights of its step (step 4 is also the checkpoint's)
    valid = YTVOSSplit(synth_root, "valid")
    val_j = validate(load_model(tmp_path / "run/last.pt"), valid, 1, "cpu")
    assert [r.get("val_J") for r in log][1::2] == [log[1]["val_J"], pytest.approx(val_j, abs=2e-4)]
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert saved["size"] == [64, 96]
    # each line's lr is the one its step used (the scheduler moves on after the step)
    cfg = load_config("tiny", saved)
    assert [r["lr"] for r in log] == pytest.approx([cfg.lr * lr_factor(s, cfg) for s in range(4)])
    assert log[0]["lr"] == pytest.approx(cfg.lr / cfg.warmup)
    ckpt = load_checkpoint(tmp_path / "run/last.pt")
    assert ckpt["step"] == 4 and {"optimizer", "scheduler", "rng"} <= set(ckpt)
    model = load_model(tmp_path / "w.pt")  # the float16 export
    # trained at 64x96 (--set size), so it is predicted at 64x96, not the registry's 128x224
    assert model.cfg.input_size == (64, 96) and ckpt["model_config"]["input_size"] == (64, 96)
    ref = build_model("tiny")
    ref.load_state_dict(ckpt["model"])
    x, m = torch.rand(1, 2, 3, 64, 96), torch.ones(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x, m), ref.eval()(x, m), atol=2e-2, rtol=2e-2)
    assert (tmp_path / "w.pt").stat().st_size < 0.6 * (tmp_path / "run/last.pt").stat().st_size / 3
    # both know the loss they were trained with (online learning fine-tunes with it)
    assert training_loss(load_checkpoint(tmp_path / "w.pt")) == "bce_iou"
    assert training_loss(ckpt) == "bce_iou"
    export_model(ref, tmp_path / "bare.pt")  # no training record: the paper's loss
    assert training_loss(load_checkpoint(tmp_path / "bare.pt")) == "balanced"


def test_killed_and_resumed_run_ends_identical(synth_root, tmp_path):
    steps = ["--steps", "40", "--set", "ckpt_every=5", "--set", "val_every=1000"]
    _train(synth_root, tmp_path / "whole", *steps)
    proc = _train(synth_root, tmp_path / "cut", *steps, wait=False)
    log = tmp_path / "cut" / "log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it between two checkpoints
        n = len(log.read_text().splitlines()) if log.exists() else 0
        if n >= 12 and (tmp_path / "cut" / "last.pt").exists():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = load_checkpoint(tmp_path / "cut" / "last.pt")["step"]
    assert 5 <= killed_at < 40
    _train(synth_root, tmp_path / "cut", *steps, "--resume")
    a, b = load_checkpoint(tmp_path / "whole/last.pt"), load_checkpoint(tmp_path / "cut/last.pt")
    assert a["step"] == b["step"] == 40
    assert _states_equal(a["model"], b["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(_states_equal(sa[k], sb[k]) for k in sa)
    la = (tmp_path / "whole/log.jsonl").read_text().splitlines()
    lb = (tmp_path / "cut/log.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in la] == [json.loads(x)["loss"] for x in lb]


def test_resume_errors_are_clear(synth_root, tmp_path):
    run = tmp_path / "run"
    cmd = ["train", "--data", synth_root, "--out", run, *SMALL_TRAIN, "--resume"]
    r = run_kit(*cmd)
    assert r.returncode == 2 and "last.pt: no checkpoint to --resume" in r.stderr
    run.mkdir(exist_ok=True)
    (run / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    r = run_kit(*cmd)
    assert r.returncode == 2 and "last.pt: cannot read checkpoint" in r.stderr
    (run / "last.pt").unlink()
    _train(synth_root, run, "--steps", "1")
    r = run_kit(*cmd, "--set", "lr=0.5")
    assert r.returncode == 2 and "other settings" in r.stderr and "'lr'" in r.stderr


def test_torchrun_two_processes_match_one(synth_root, tmp_path):
    # in float32: bfloat16 rounds a batch of 2 per process otherwise than one of 4
    args = ["--steps", "3", "--set", "batch_size=4", "--set", "val_every=1000", "--set",
            "bf16=false"]  # fmt: skip
    r = _train(synth_root, tmp_path / "ddp", *args, torchrun=2)
    _train(synth_root, tmp_path / "one", *args)
    a, b = load_checkpoint(tmp_path / "ddp/last.pt"), load_checkpoint(tmp_path / "one/last.pt")
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], atol=1e-5, rtol=1e-4)
    log = (tmp_path / "ddp/log.jsonl").read_text().splitlines()
    assert len(log) == 3  # only rank 0 writes
    assert r.stdout.count("trained to step 3") == 1


def test_validation_j_is_what_evaluate_reports(synth_root, weights, tmp_path):
    from vostutorial.checkpoint import load_model
    from vostutorial.data import YTVOSSplit
    from vostutorial.evaluate import evaluate_ytvos
    from vostutorial.train import validate

    valid = YTVOSSplit(synth_root, "valid")
    model = load_model(weights)
    val_j = validate(model, valid, len(valid), "cpu")
    pred = tmp_path / "pred"
    from vostutorial.inference import predict_split

    predict_split(synth_root, "valid", weights, pred, progress=False)
    report = evaluate_ytvos(pred, synth_root, "valid", workers=1, progress=False)
    scored = [o["J"] for o in report["objects"] if o["frames"]]
    assert val_j == pytest.approx(sum(scored) / len(scored), abs=1e-6)


def test_fade_feedback_needs_a_model_with_feedback_and_splits_over_processes():
    from vostutorial.train import feedback_dims

    with pytest.raises(ValueError, match="fade_feedback must be 0 for 'paper'"):
        load_config("paper", {"fade_feedback": 0.5})
    cfg = load_config("tiny")
    torch.manual_seed(3)
    whole = feedback_dims(cfg, 8)
    assert whole.shape == (8, 1, 1, 1) and (whole >= 0.5).all() and (whole <= 1).all()
    halves = []
    for rank in (0, 1):  # each process draws the same numbers and keeps its slice
        torch.manual_seed(3)
        halves.append(feedback_dims(cfg, 4, rank, 2))
    assert torch.equal(torch.cat(halves), whole)


def test_bf16_runs_the_forward_pass_in_bfloat16_and_old_runs_resume_in_float32(tmp_path):
    from vostutorial.train import TrainState, _resume, _save, mixed_precision

    cpu = torch.device("cpu")
    cfg = load_config("tiny", {"size": [64, 96], "bf16": True})
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        with mixed_precision(replace(cfg, bf16=bf16), cpu):
            assert conv(x).dtype == dtype
    # the same step in both formats: close, not equal (the weights stay float32)
    losses = {}
    for bf16 in (True, False):
        torch.manual_seed(0)
        model = build_model("tiny", input_size=(64, 96))
        frames, first = torch.rand(2, 3, 3, 64, 96), (torch.rand(2, 1, 64, 96) > 0.5).float()
        with mixed_precision(replace(cfg, bf16=bf16), cpu):
            logits = model(frames, first)
        assert logits.dtype == torch.float32 and model.encoder[0].weight.dtype == torch.float32
        losses[bf16] = bce_iou(logits.float(), first[:, None].expand(-1, 3, -1, -1, -1)).item()
    assert losses[True] != losses[False] and losses[True] == pytest.approx(losses[False], 0.05)
    # a checkpoint written before the setting existed was trained in float32
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    old = replace(cfg, bf16=False)
    _save(tmp_path / "last.pt", old, TrainState(model, opt, sched, scaler, step=3), {})
    ckpt = torch.load(tmp_path / "last.pt", weights_only=False)
    del ckpt["train_config"]["bf16"]
    torch.save(ckpt, tmp_path / "last.pt")
    state = TrainState(model, opt, sched, scaler)
    _resume(tmp_path / "last.pt", old, state)
    assert state.step == 3
    with pytest.raises(ValueError, match=r"other settings \{'bf16': \(False, True\)\}"):
        _resume(tmp_path / "last.pt", cfg, state)


def test_every_recipe_trains_in_float32_on_any_cpu():
    # bfloat16 is several times slower per step on CPUs without AMX / AVX512-BF16, and a bf16
    # checkpoint is reproduced only on a CPU that has them
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    assert {"tiny", "s2s-vgg16", "paper"} <= set(names)
    assert [n for n in names if load_config(n).bf16] == []


def test_the_shipped_checkpoint_was_trained_by_make_train_tiny():
    # `make train-tiny` reproduces the shipped weights only if tiny.toml is the recipe that
    # trained them, to the last setting, and the run went to its last step
    info = load_checkpoint(SHIPPED_CHECKPOINT)["info"]
    recipe = asdict(load_config("tiny"))
    assert info["train_config"] == recipe
    assert info["step"] == recipe["steps"]


def test_bf16_on_a_cpu_without_native_bfloat16_says_how_to_train_in_float32(monkeypatch):
    from vostutorial import preflight

    said = []
    cfg, cpu = load_config("tiny", {"bf16": True}), torch.device("cpu")
    monkeypatch.setattr(preflight, "native_bf16", lambda: False)
    preflight.warn_slow_bf16(cfg, cpu, said.append)
    preflight.warn_slow_bf16(replace(cfg, bf16=False), cpu, said.append)
    assert len(said) == 1 and "--set bf16=false" in said[0]
    monkeypatch.setattr(preflight, "native_bf16", lambda: True)
    preflight.warn_slow_bf16(cfg, cpu, said.append)
    assert len(said) == 1

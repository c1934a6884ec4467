"""Training (rawback.train): the loop, exact resumption, data-parallel runs under torchrun, the
training config and `rawback train`'s refusals; a tiny model trains for a few steps on synthetic DNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rawpy
import torch
from typer.testing import CliRunner

from rawback.cli import app
from rawback.errors import RawbackError, UsageError
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.train.config import TrainConfig
from rawback.train.data import PairSettings, TrainingPairs, build_cache
from rawback.train.diffusion_kind import TrainingStep
from rawback.train.loop import TrainOptions, train
from rawback.weights import load_weights
from tests.helpers import small_jpeg, write_synthetic_dng

TINY_TRAIN = dict(
    model="tiny", steps=6, batch_size=2, patch=32, warmup=2, workers=0, log_every=1, checkpoint_every=3,
    validate_every=1000, val_crop=64,
)  # fmt: skip


def test_tiny_model_lowers_its_loss_on_a_fixed_batch(raw_folder, cache_dir) -> None:
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    knots = preset("tiny").global_head.tone_knots
    pairs = TrainingPairs(folders, PairSettings(patch=32, thumb=16, tone_knots=knots), seed=0)
    batch = torch.utils.data.default_collate([pairs[i] for i in range(4)])
    assert batch["global_target"].shape == (4, 3 + knots)
    torch.manual_seed(0)
    step = TrainingStep(RawbackModel(preset("tiny")), TrainConfig(p_sigma_max=0.5))
    optimizer = torch.optim.Adam(step.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(1)  # the same noise levels every step: a fixed objective
        loss, _ = step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_interrupted_training_resumes_exactly(raw_folder, cache_dir, tmp_path) -> None:
    config = TrainConfig(**TINY_TRAIN)
    straight = train(
        TrainOptions(data=raw_folder, out=tmp_path / "straight", config=config, cache_dir=cache_dir)
    )

    def interrupt_at_step_4(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 4:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir), interrupt_at_step_4)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4  # saved on Ctrl-C
    resumed = train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir, resume=True))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(out / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert straight.is_file() and resumed.is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_other_files_and_names_the_settings_it_changes(
    raw_folder, cache_dir, tmp_path
) -> None:
    import dataclasses
    import shutil

    config = TrainConfig(**{**TINY_TRAIN, "steps": 3})
    out = tmp_path / "run"
    train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir))
    more = tmp_path / "more"
    shutil.copytree(raw_folder, more)
    (more / "c").mkdir()
    write_synthetic_dng(more / "c" / "four.dng", seed=7)
    fresh_cache = tmp_path / "fresh-cache"
    with pytest.raises(RawbackError, match=r"the run's training files differ \(\+c/four.dng\)"):
        train(TrainOptions(data=more, out=out, config=config, cache_dir=fresh_cache, resume=True))
    assert not fresh_cache.exists()  # refused before decoding anything

    events: list[dict] = []
    changed = dataclasses.replace(config, steps=4, lr=1e-4)
    train(
        TrainOptions(data=raw_folder, out=out, config=changed, cache_dir=cache_dir, resume=True),
        events.append,
    )
    (note,) = [e["message"] for e in events if e["event"] == "note"]
    assert note == "resuming with changed settings: lr 0.0003 -> 0.0001, steps 3 -> 4"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (resume,) = [r for r in records if r["event"] == "resume"]
    assert resume["step"] == 3 and resume["changed"] == {"lr": [0.0003, 0.0001], "steps": [3, 4]}


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint"])
def test_resume_from_a_damaged_checkpoint_is_one_line_before_any_decoding(
    raw_folder, tmp_path, damage: bytes
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(damage)
    config = TrainConfig(**TINY_TRAIN)
    with pytest.raises(RawbackError, match=r"checkpoint\.pt: unreadable checkpoint"):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache, resume=True))
    assert not cache.exists()


class _RunsCode:
    """A pickle that runs code when it is loaded: what a crafted checkpoint would hold."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('pwned').write_text('ran')",))


def test_resume_never_runs_code_from_a_crafted_checkpoint(raw_folder, tmp_path, monkeypatch) -> None:
    """Issue 21: `train --resume` of a run folder someone else wrote must not execute its pickle."""
    monkeypatch.chdir(tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.mkdir()
    crafted = {"step": 0, "model": {}, "ema": {}, "optimizer": {}, "config": {}, "payload": _RunsCode()}
    torch.save(crafted, out / "checkpoint.pt")
    config = TrainConfig(**TINY_TRAIN)
    with pytest.raises(RawbackError, match=r"checkpoint\.pt: unreadable checkpoint \(UnpicklingError\)"):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache, resume=True))
    assert not (tmp_path / "pwned").exists()
    assert not cache.exists()


def test_an_interrupt_during_an_optimiser_step_arrives_after_the_step_count() -> None:
    """Ctrl-C between the weights' update and the step count would save a checkpoint one step
    ahead of its count, which would not resume exactly: the interrupt waits for the block."""
    import os
    import signal
    import time

    from rawback.train.loop import signals_deferred

    # As in a terminal: Python's own Ctrl-C handler. A process started in the background by a
    # non-interactive shell (`make test &`) inherits SIGINT ignored, and Python then installs none.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        done = []
        with pytest.raises(KeyboardInterrupt), signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a check at which Python runs a signal's handler: it arrives in the block
            done.append("weights")
            done.append("step")
        assert done == ["weights", "step"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_data_parallel_training_under_torchrun_on_cpu_trains_and_resumes(
    raw_folder, cache_dir, tmp_path
) -> None:
    """`torchrun --nproc_per_node=2 -m rawback train` (gloo on the CPU): rank 0 writes the run, and
    `--resume` under torchrun goes on from its checkpoint."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"

    def torchrun(steps: int, *extra: str) -> subprocess.CompletedProcess:
        sets = [
            f"--set={k}={json.dumps(v)}"
            for k, v in {**TINY_TRAIN, "steps": steps, "checkpoint_every": 2}.items()
        ]
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "rawback", "train", "--data", str(raw_folder), "--out", str(out), "--cache-dir",
                str(cache_dir), "--device", "cpu", *sets, *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)

    first = torchrun(2)
    assert first.returncode == 0, first.stderr[-2000:]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2
    second = torchrun(4, "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4]  # rank 0 logs, once
    model = load_weights(out / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_train_config_overrides_are_typed() -> None:
    config = TrainConfig().with_overrides(["steps=10", 'validation=["a/*"]', "model=tiny", "lr=1"])
    assert (config.steps, config.validation, config.model, config.lr) == (10, ("a/*",), "tiny", 1.0)
    with pytest.raises(UsageError, match="KEY=VALUE"):
        TrainConfig().with_overrides(["stepz=10"])
    with pytest.raises(UsageError, match="must be int"):
        TrainConfig().with_overrides(["steps=ten"])
    with pytest.raises(UsageError, match="kind must be one of diffusion, invisp, latent, not 'flow'"):
        TrainConfig().with_overrides(["kind=flow"])


def test_train_options_become_one_config_and_a_run_is_never_started_over(tmp_path: Path) -> None:
    """`train --config F --set ... --validation G --exclude G`: the globs are settings like any other."""
    from rawback.train.checkpoint import check_new_run
    from rawback.train.config import train_config

    file = tmp_path / "config.json"
    file.write_text(json.dumps({"steps": 7, "lr": 0.001}))
    config = train_config(config_file=file, overrides=["lr=0.002"], validation=["val/*"], exclude=["x/*"])
    assert (config.steps, config.lr, config.validation, config.exclude) == (7, 0.002, ("val/*",), ("x/*",))
    assert train_config() == TrainConfig()
    with pytest.raises(UsageError, match="KEY=VALUE"):
        train_config(overrides=["steps"])
    check_new_run(tmp_path / "new", resume=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    check_new_run(tmp_path, resume=True)
    with pytest.raises(UsageError, match="already holds a run: pass --resume"):
        check_new_run(tmp_path, resume=False)


def test_simulator_settings_come_from_the_training_config(raw_folder, cache_dir) -> None:
    from rawback.isp.simulate import SimulatorSettings

    assert TrainConfig().simulator_settings() == SimulatorSettings()  # empty: the defaults
    config = TrainConfig().with_overrides(
        ["simulator.jpeg_quality=[70,95]", 'simulator.tone_curves=[["rolloff",1]]', "simulator.jpeg_prob=1"]
    )
    settings = config.simulator_settings()
    assert (settings.jpeg_quality, settings.tone_curves, settings.jpeg_prob) == (
        (70, 95),
        (("rolloff", 1),),
        1,
    )
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config  # config.json round trip
    for bad, message in (
        ("simulator.jpeg_qualty=[70,95]", "unknown simulator setting"),
        ("simulator.jpeg_quality=90", "must look like"),
        ('simulator.tone_curves=[["filmic",1]]', "choose among"),
    ):
        with pytest.raises(UsageError, match=message):
            TrainConfig().with_overrides([bad])
    # The items follow the configured finish: every tone curve is the one family allowed.
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    pairs = TrainingPairs(folders, PairSettings(patch=32, thumb=16, simulator=settings), seed=5)
    drawn = [pairs.draw(i).sim.params for i in range(6)]
    assert all(p["tone_curve"] == "rolloff" for p in drawn if p["member"] == "parametric")
    assert all(70 <= p["jpeg"]["quality"] <= 95 for p in drawn)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "bogus"], "--device must be auto, cpu, cuda, cuda:N or mps, not 'bogus'"),
        (["--device", "cuda:7"], "--device cuda:7: "),
        (["--resume"], "checkpoint.pt: nothing to resume"),
        (["--validation", "nomatch/*"], "--validation nomatch/*: matches no RAW file under"),
    ],
)
def test_cli_train_refuses_bad_starts_in_one_line_before_any_work(
    raw_folder, tmp_path, extra: list[str], message: str
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == (2 if "bogus" in extra else 1), result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not out.exists() and not cache.exists()  # nothing decoded, no empty run folder


def test_cli_train_refuses_a_run_folder_that_is_a_file_before_decoding(raw_folder, tmp_path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.write_text("not a folder")
    result = CliRunner().invoke(
        app, ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {out}: is a file, not a run folder\n"
    assert not cache.exists()


def test_cli_train_validates_writes_weights_and_refuses_to_clobber(raw_folder, cache_dir, tmp_path) -> None:
    out = tmp_path / "run"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY_TRAIN, "steps": 2, "workers": 1}.items()]
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache_dir),
            "--validation", "b/*", *sets]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation at step 2" in result.output  # held-out file scored beside the baseline
    assert (out / "model.pt").is_file() and (out / "model.json").is_file()
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert "validation" in events
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=1)
    converted = CliRunner().invoke(app, ["convert", str(jpeg), "--weights", str(out / "model.pt"), "-q"])
    assert converted.exit_code == 0, converted.output
    with rawpy.imread(str(tmp_path / "photo.dng")) as raw:
        assert raw.raw_image_visible.shape == (90, 120)


def test_a_gpu_index_beyond_the_machine_is_refused_however_large(monkeypatch) -> None:
    from rawback.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    for name in ("cuda:2", "cuda:999", "cuda:256"):  # 999 and 256 wrap around in torch.device
        with pytest.raises(RawbackError, match=f"--device {name}: this process sees 2 CUDA GPU"):
            resolve_device(name)


def test_every_kind_a_config_accepts_has_a_training() -> None:
    from rawback.choices import ModelKind as KindName
    from rawback.train.kinds import get_kind

    for name in KindName:
        kind = get_kind(name)
        assert kind.name == name
        assert callable(kind.build) and callable(kind.loss) and callable(kind.save)

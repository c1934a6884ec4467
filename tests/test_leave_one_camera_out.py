"""tools/leave_one_camera_out.py: per held-out camera, a run trained only on the other cameras'
files, an eval of it on the held-out camera's files, and a summary beside the analytic baseline.
Two synthetic "cameras" (DNGs with their own Make and Model), a tiny model, 2 training steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rawback.io.dng_identity import DngIdentity
from tests.helpers import write_synthetic_dng
from tests.test_train import TINY_TRAIN
from tools.leave_one_camera_out import SUMMARY_METRICS, folder_name, run_state

ROOT = Path(__file__).resolve().parents[1]
CAMERAS = {"Alpha One": ("Alpha", "One"), "Beta Two": ("Beta", "Two")}


@pytest.fixture(scope="module")
def two_cameras(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two-cameras")
    (root / "sub").mkdir()
    names = {"Alpha One": ["a1.dng", "a2.dng", "sub/a3.dng"], "Beta Two": ["b1.dng", "sub/b2.dng"]}
    seed = 0
    for camera, files in names.items():
        for name in files:
            write_synthetic_dng(root / name, seed, 96, 128, identity=DngIdentity(*CAMERAS[camera], camera))
            seed += 1
    return root


def run_tool(data: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    config = out.parent / "tiny.json"
    config.write_text(json.dumps({**TINY_TRAIN, "steps": 2, "checkpoint_every": 2}))
    command = [
        sys.executable, str(ROOT / "tools" / "leave_one_camera_out.py"), str(data), "--out", str(out),
        "--train-args", f"--config {config} --cache-dir {cache} --device cpu --quiet",
        "--eval-args", "--device cpu --sampler one-step --limit 2", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_each_camera_is_scored_by_a_model_that_never_saw_it(two_cameras, tmp_path) -> None:
    out = tmp_path / "runs"
    result = run_tool(two_cameras, out, tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr

    for camera, (make, _) in CAMERAS.items():
        base = out / folder_name(camera)
        trained_on = sorted(
            p.relative_to(base / "train-data").as_posix() for p in (base / "train-data").rglob("*.dng")
        )
        evaluated = sorted(
            p.relative_to(base / "eval-data").as_posix() for p in (base / "eval-data").rglob("*.dng")
        )
        own_letter = make[0].lower()
        assert trained_on and all(not Path(name).name.startswith(own_letter) for name in trained_on)
        assert evaluated and all(Path(name).name.startswith(own_letter) for name in evaluated)
        # what the run itself recorded as its training files: none of the held-out camera's
        checkpoint = torch.load(base / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert sorted(checkpoint["files"]["training"]) == trained_on
        assert run_state(base / "run") == "finished"
        assert (base / "eval" / "eval-rawback-diffusion.json").is_file()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["cameras"] == {"Alpha One": 3, "Beta Two": 2}
    assert summary["problems"] == []
    rows = {(row["camera"], row["row"]): row for row in summary["rows"]}
    assert {camera for camera, _ in rows} == set(CAMERAS)
    for camera in CAMERAS:
        analytic = rows[camera, "analytic"]
        diffusion = next(row for (cam, label), row in rows.items() if cam == camera and label != "analytic")
        assert diffusion["protocol"] == "rawback" and diffusion["images"] == 2
        for key in SUMMARY_METRICS:
            assert diffusion[key] is not None and analytic[key] is not None, key
            assert diffusion["minus_analytic"][key] == pytest.approx(diffusion[key] - analytic[key])
    markdown = (out / "summary.md").read_text()
    assert "Alpha One" in markdown and "Beta Two" in markdown and "diffusion − analytic" in markdown

    # Again: finished runs are not trained again, and the summary is rewritten from fresh evals.
    again = run_tool(two_cameras, out, tmp_path / "cache", "--camera", "beta two")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "finished, not trained again" in again.stdout and " -m rawback train " not in again.stdout
    assert {row["camera"] for row in json.loads((out / "summary.json").read_text())["rows"]} == {"Beta Two"}


def test_dry_run_prints_the_commands_and_makes_nothing(two_cameras, tmp_path) -> None:
    out = tmp_path / "runs"
    result = run_tool(two_cameras, out, tmp_path / "cache", "--dry-run", "--protocol", "finished")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    trains = [line for line in lines if " -m rawback train " in line]
    evals = [line for line in lines if " -m rawback eval " in line]
    assert len(trains) == 2 and len(evals) == 2
    assert all("--protocol finished" in line and "--weights" in line for line in evals)
    assert not out.exists()


def test_an_unknown_camera_is_one_line(two_cameras, tmp_path) -> None:
    result = run_tool(two_cameras, tmp_path / "runs", tmp_path / "cache", "--camera", "Gamma", "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no files of Gamma")
    assert "Traceback" not in result.stderr


def test_by_make_holds_out_every_model_of_a_make_together(two_cameras, tmp_path) -> None:
    result = run_tool(two_cameras, tmp_path / "runs", tmp_path / "cache", "--by-make", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "== Alpha: 3 held out, 2 to train on" in result.stdout
    assert "== Beta: 2 held out, 3 to train on" in result.stdout

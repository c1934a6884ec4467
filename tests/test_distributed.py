"""`rawback batch` under torchrun (rawback.distributed, rawback.cli.world): one folder sharded over
every process of the job, resumable, with rank 0 the only one that reports. The runs are real
torchrun jobs of two CPU processes (gloo), their outputs kept apart per rank."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rawback import distributed
from rawback.batch import Job, Outcome, Status
from rawback.camera import ProfileSource
from rawback.cli import app
from rawback.convert import ConvertResult
from rawback.errors import UsageError
from rawback.inverse import NeutralSource
from tests.conftest import REPO
from tests.test_batch import write_photo

PHOTOS = ("a.jpg", "b.jpg", "c.png", "sub/d.jpg", "sub/e.jpg", "sub/deeper/f.jpg", "g.jpg")


def test_the_world_is_read_from_torchruns_environment() -> None:
    assert distributed.torchrun_world({}) is None  # no torchrun: an ordinary batch
    assert distributed.torchrun_world({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}) is None
    world = distributed.torchrun_world(
        {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "TORCHELASTIC_RESTART_COUNT": "2"}
    )
    assert world == distributed.World(rank=5, local_rank=1, size=8, attempt=2) and not world.leader
    with pytest.raises(UsageError, match="RANK < WORLD_SIZE"):
        distributed.torchrun_world({"RANK": "8", "LOCAL_RANK": "0", "WORLD_SIZE": "8"})
    with pytest.raises(UsageError, match="integers"):
        distributed.torchrun_world({"RANK": "x", "WORLD_SIZE": "2"})
    assert distributed.device_for(world, "cpu") == "cpu"
    assert distributed.device_for(world, "cuda") == "cuda:1"  # each process its own GPU
    assert distributed.device_for(world, "cuda:0") == "cuda:0"  # as given
    assert (
        distributed.group_device("cpu", "diffusion")
        == distributed.group_device("cuda:0", "analytic")
        == "cpu"
    )
    assert distributed.group_device("cuda:999", "diffusion") == "cpu"  # missing: check_options says so


def test_an_outcome_travels_to_rank_0_whole() -> None:
    odd = Path("in/caf\udce9.jpg")  # a name that is not valid UTF-8
    result = ConvertResult(
        source=odd, output=Path("out/caf\udce9.dng"), profile="generic", megapixels=12.0, seconds=3.5,
        notes=("camera: generic",), warnings=("damaged JPEG data",), camera_source=ProfileSource.GENERIC,
        white_balance_source=NeutralSource.DAYLIGHT,
    )  # fmt: skip
    for outcome in (
        Outcome(Job(odd, result.output), Status.CONVERTED, result),
        Outcome(
            Job(Path("x.jpg"), Path("x.dng"), "a problem"),
            Status.FAILED,
            error="x.jpg: bad",
            traceback="Traceback ...",
            disk_full=True,
        ),
        Outcome(Job(Path("y.jpg"), Path("y.dng")), Status.SKIPPED),
    ):
        back = distributed.outcome_from_json(distributed.outcome_to_json(outcome))
        assert back == outcome and back.traceback == outcome.traceback


def _torchrun(args: list[str], logs: Path) -> tuple[int, dict[int, str], dict[int, str]]:
    """Run `torchrun --standalone --nproc-per-node 2 -m rawback ARGS`; (status, stdout and stderr of
    each local rank), kept apart by torchrun's --redirects."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "--log-dir", str(logs), "--redirects", "3", "-m", "rawback", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    out, err = {}, {}
    for rank in (0, 1):
        (folder,) = logs.glob(f"*/attempt_0/{rank}")  # one run per log folder
        out[rank] = (folder / "stdout.log").read_text()
        err[rank] = (folder / "stderr.log").read_text()
    return done.returncode, out, err


def _rawback_lines(text: str) -> list[str]:
    """What rawback prints (torch may add its own warnings to a rank's stderr)."""
    starts = ("converted ", "skipped ", "error:", "warning:", "interrupted")
    return [line for line in text.splitlines() if line.startswith(starts) or " converted, " in line]


def test_batch_under_torchrun_writes_every_dng_once_resumes_and_reports_on_rank_0(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    for index, rel in enumerate(PHOTOS):
        write_photo(photos / rel, size=(64, 48), seed=index)
    (photos / "sub" / "bad.jpg").write_text("not a photo")  # one rank's bad file
    out = tmp_path / "out"
    args = ["batch", str(photos), "-o", str(out), "--method", "analytic"]

    status, stdout, stderr = _torchrun(args, tmp_path / "logs1")
    assert status == 1, (stdout, stderr)  # a photo failed: rank 0's status, torchrun's too
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(str(Path(rel).with_suffix(".dng")) for rel in PHOTOS)  # and no .part left
    lines = stdout[0].splitlines()
    for rel in PHOTOS:  # every photo reported once, whichever rank converted it
        assert sum(line.startswith(f"converted {photos / rel} -> ") for line in lines) == 1, stdout[0]
    assert lines[-1].startswith("7 converted, 0 skipped, 1 failed in "), stdout[0]
    assert _rawback_lines(stderr[0]) == [f"error: {photos / 'sub' / 'bad.jpg'}: not an image "
                                         "(not a JPEG, PNG, TIFF or HEIC file)"]  # fmt: skip
    assert _rawback_lines(stdout[1]) == _rawback_lines(stderr[1]) == []  # rank 1 converted, silently

    single = tmp_path / "single"  # the same DNGs as one process makes
    result = CliRunner().invoke(app, [*args[:3], str(single), *args[4:]])
    assert result.exit_code == 1, result.output
    for dng in out.rglob("*.dng"):
        assert dng.read_bytes() == (single / dng.relative_to(out)).read_bytes(), dng

    (photos / "sub" / "bad.jpg").unlink()
    status, stdout, stderr = _torchrun(args, tmp_path / "logs2")
    assert status == 0, (stdout, stderr)  # resumed: nothing left to do
    assert stdout[0].splitlines()[-1].startswith("0 converted, 7 skipped, 0 failed in "), stdout[0]
    assert sum(line.startswith("skipped ") for line in stdout[0].splitlines()) == 7
    assert _rawback_lines(stdout[1]) == _rawback_lines(stderr[1]) == []


@pytest.mark.slow
def test_batch_under_torchrun_with_the_bundled_model(tmp_path: Path) -> None:
    photos = tmp_path / "in"
    for index, rel in enumerate(PHOTOS[:3]):
        write_photo(photos / rel, size=(96, 64), seed=index)
    out = tmp_path / "out"
    status, stdout, stderr = _torchrun(["batch", str(photos), "-o", str(out), "--device", "cpu"],
                                       tmp_path / "logs")  # fmt: skip
    assert status == 0, (stdout, stderr)
    assert sorted(p.name for p in out.iterdir()) == ["a.dng", "b.dng", "c.dng"]
    assert stdout[0].splitlines()[-1].startswith("3 converted, 0 skipped, 0 failed in "), stdout[0]
    assert _rawback_lines(stdout[1]) == _rawback_lines(stderr[1]) == []

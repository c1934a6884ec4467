"""Batch mode: planning (tree mirroring, hidden files, collisions, shards) and running a folder
tree with corrupt photos in it, through the plain functions and through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rawback import batch
from rawback.cli import app
from rawback.convert import ConvertOptions
from rawback.errors import InputError, UsageError
from rawback.io.image import read_image
from tests.helpers import sized_jobs

GOOD = ("a.jpg", "sub/b.png", "sub/deeper/c.JPG")
BAD = ("bad/empty.jpg", "bad/truncated.jpg", "bad/text.jpg")
IGNORED = (".hidden.jpg", ".cache/d.jpg", "notes.txt", "sub/readme.md")


def write_photo(path: Path, *, size: tuple[int, int] = (48, 32), seed: int = 0) -> Path:
    """A small photo with some structure (a smooth gradient plus noise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 / w, y * 255 / h, np.full((h, w), 128)], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.fromarray(rgb).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


def make_tree(root: Path) -> Path:
    for i, rel in enumerate(GOOD):
        write_photo(root / rel, seed=i)
    (root / "bad").mkdir(parents=True)
    (root / "bad/empty.jpg").write_bytes(b"")
    whole = write_photo(root / "whole.tmp.jpg", size=(64, 48)).read_bytes()
    (root / "whole.tmp.jpg").unlink()
    (root / "bad/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "bad/text.jpg").write_text("this is not a photo\n")
    for rel in IGNORED:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".jpg":
            write_photo(target)
        else:
            target.write_text("not a photo")
    return root


def rel_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def dng(rel: str) -> str:
    return str(Path(rel).with_suffix(".dng").as_posix())


# --- planning ------------------------------------------------------------------------------------


def test_plan_mirrors_tree_skips_hidden_and_non_images(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    jobs = batch.plan_folder(root, tmp_path / "out")
    assert [j.source.relative_to(root).as_posix() for j in jobs] == sorted(
        [*GOOD, *BAD], key=lambda r: Path(r).parts
    )
    for job in jobs:
        rel = job.source.relative_to(root)
        assert job.output == tmp_path / "out" / rel.with_suffix(".dng")
        assert job.problem is None


def test_plan_default_output_is_beside_each_photo(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    for job in batch.plan_folder(root):
        assert job.output == job.source.with_suffix(".dng")


def test_plan_skips_output_folder_inside_input(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    write_photo(root / "out" / "old.jpg")
    jobs = batch.plan_folder(root, root / "out")
    assert not any("out" in j.source.relative_to(root).parts for j in jobs)


def test_unreadable_subfolder_is_reported_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "in")
    real_scandir = os.scandir

    def scandir(path):  # what a folder without read permission does (root can read anything)
        if Path(path) == root / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    jobs = batch.plan_folder(root, tmp_path / "out")
    failed = [j for j in jobs if j.problem]
    assert [j.source for j in failed] == [root / "sub"]
    assert failed[0].problem == f"{root / 'sub'}: cannot read folder (Permission denied)"
    assert not any("sub" in j.source.relative_to(root).parts for j in jobs if not j.problem)


def test_plan_missing_folder_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        batch.plan_folder(tmp_path / "nope")


def test_two_inputs_with_one_output_is_an_error_for_the_second(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/photo.jpg")
    write_photo(tmp_path / "in/photo.png")
    first, second = batch.plan_folder(tmp_path / "in", tmp_path / "out")
    assert first.problem is None
    assert second.source.name == "photo.png"
    assert "photo.jpg" in second.problem and "\n" not in second.problem


def test_convert_plan_output_file_or_folder(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "x/a.png"
    assert batch.plan_files([a], tmp_path / "one.DNG")[0].output == tmp_path / "one.DNG"
    assert batch.plan_files([a], None)[0].output == tmp_path / "a.dng"
    jobs = batch.plan_files([a, b], tmp_path / "out")
    assert [j.output for j in jobs] == [tmp_path / "out/a.dng"] * 2
    assert jobs[0].problem is None and jobs[1].problem is not None  # same name from two folders
    with pytest.raises(UsageError, match="names one file"):
        batch.plan_files([a, b], tmp_path / "one.dng")


def test_output_that_would_replace_its_input_is_refused(tmp_path: Path) -> None:
    (job,) = batch.plan_files([tmp_path / "photo.dng"])
    assert job.problem is not None and "replace the input" in job.problem


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_are_disjoint_cover_the_plan_and_are_deterministic(tmp_path: Path, count: int) -> None:
    root = make_tree(tmp_path / "in")
    plan = batch.plan_folder(root)
    shards = [batch.shard(batch.plan_folder(root), i, count) for i in range(count)]
    assert sorted(j.source for s in shards for j in s) == sorted(j.source for j in plan)
    assert sum(len(s) for s in shards) == len(plan)
    assert shards[0][0] == plan[0]


@pytest.mark.parametrize("text", ["2/2", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_spec(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        batch.parse_shard(text)


def test_shard_spec() -> None:
    assert batch.parse_shard("3/4") == (3, 4)


# --- running -------------------------------------------------------------------------------------


def test_run_reports_through_callbacks_and_counts_failures(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    jobs = batch.plan_folder(root, tmp_path / "out")
    started, done = [], []
    summary = batch.run_jobs(jobs, ConvertOptions(), on_start=started.append, on_done=done.append)
    assert started == jobs and [o.job for o in done] == jobs
    assert (summary.converted, summary.skipped, summary.failed) == (len(GOOD), 0, len(BAD))
    assert summary.megapixels == pytest.approx(len(GOOD) * 48 * 32 / 1e6)
    for outcome in done:
        if outcome.status is batch.Status.FAILED:
            assert "\n" not in outcome.error and str(outcome.job.source) in outcome.error


def test_issue_21_an_unexpected_error_fails_its_photo_alone_and_is_reported_as_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-photo boundary: a bug met by one photo used to stop the whole batch."""
    write_photo(tmp_path / "a.jpg")
    write_photo(tmp_path / "b.jpg")
    convert = batch.convert_file

    def broken_on_a(source: Path, *args: object, **kwargs: object):
        if source.name == "a.jpg":
            raise RuntimeError("a bug\nwith a second line")
        return convert(source, *args, **kwargs)

    monkeypatch.setattr(batch, "convert_file", broken_on_a)
    outcomes: list[batch.Outcome] = []
    summary = batch.run_jobs(
        batch.plan_folder(tmp_path), ConvertOptions(method="analytic"), on_done=outcomes.append
    )
    assert (summary.converted, summary.failed) == (1, 1)
    failed = outcomes[0]
    assert failed.error == (
        f"{tmp_path / 'a.jpg'}: unexpected error (RuntimeError: a bug); a bug in rawback, please report it"
    )
    assert "Traceback" in failed.traceback and "broken_on_a" in failed.traceback


def test_interrupts_are_not_caught_at_the_photo_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "a.jpg")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "convert_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.run_jobs(batch.plan_folder(tmp_path), ConvertOptions())


def test_bad_method_fails_once_before_any_photo(tmp_path: Path) -> None:
    write_photo(tmp_path / "a.jpg")
    with pytest.raises(UsageError, match="--method"):
        batch.run_jobs(batch.plan_folder(tmp_path), ConvertOptions(method="nope"))


# --- through the CLI -----------------------------------------------------------------------------


def run_cli(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_batch_tree_with_corrupt_files(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    out = tmp_path / "out"
    result = run_cli("batch", root, "-o", out)
    assert result.exit_code == 1, result.output
    # The good photos convert, in a mirror of the tree; nothing for bad, hidden or non-image files.
    assert rel_files(out) == {dng(r) for r in GOOD}
    errors = result.stderr.splitlines()
    assert len(errors) == len(BAD)
    for rel, line in zip(sorted(BAD), sorted(errors), strict=True):
        assert line.startswith("error: ") and rel in line
    assert "Traceback" not in result.output
    assert f"{len(GOOD)} converted, 0 skipped, {len(BAD)} failed" in result.stdout
    assert "per megapixel" in result.stdout

    # A re-run resumes: what exists is skipped, the bad ones are reported again.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.dng")}
    again = run_cli("batch", root, "-o", out)
    assert again.exit_code == 1
    assert f"0 converted, {len(GOOD)} skipped, {len(BAD)} failed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dng")} == before


def test_batch_all_good_exits_zero_and_overwrite_reconverts(tmp_path: Path) -> None:
    for i, rel in enumerate(GOOD):
        write_photo(tmp_path / "in" / rel, seed=i)
    assert run_cli("batch", tmp_path / "in").exit_code == 0
    assert {dng(r) for r in GOOD} <= rel_files(tmp_path / "in")
    result = run_cli("batch", tmp_path / "in", "--overwrite")
    assert result.exit_code == 0 and f"{len(GOOD)} converted, 0 skipped" in result.stdout


def test_batch_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/a.jpg")
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--verbose")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("converted ") and "a.jpg" in lines[0] and "a.dng" in lines[0]
    assert any("camera profile generic" in line for line in lines)  # --verbose: profile and why
    assert "\x1b[" not in result.stdout  # no terminal control codes in a log


def test_batch_quiet_prints_errors_only(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/a.jpg")
    (tmp_path / "in/b.jpg").write_bytes(b"")
    result = run_cli("batch", tmp_path / "in", "--quiet")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "b.jpg" in result.stderr


def test_batch_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "in")
    before = rel_files(root)
    result = run_cli("batch", root, "-o", tmp_path / "out", "--dry-run")
    assert not (tmp_path / "out").exists()
    assert rel_files(root) == before
    assert result.stdout.count("would convert") == len(GOOD) + len(BAD)
    assert "nothing was written" in result.stdout


def test_batch_collision_reported_for_second(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/photo.jpg", seed=1)
    write_photo(tmp_path / "in/photo.png", seed=2)
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert rel_files(tmp_path / "out") == {"photo.dng"}
    (line,) = result.stderr.splitlines()
    assert "photo.png" in line and "photo.jpg" in line


def test_batch_shards_split_the_work(tmp_path: Path) -> None:
    for i, rel in enumerate(GOOD):
        write_photo(tmp_path / "in" / rel, seed=i)
    out = tmp_path / "out"
    first = run_cli("batch", tmp_path / "in", "-o", out, "--shard", "0/2")
    assert first.exit_code == 0
    assert len(rel_files(out)) == 2  # photos 0 and 2 of 3
    second = run_cli("batch", tmp_path / "in", "-o", out, "--shard", "1/2")
    assert second.exit_code == 0 and "1 converted, 0 skipped" in second.stdout
    assert rel_files(out) == {dng(r) for r in GOOD}


def test_batch_bad_shard_is_usage_error(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/a.jpg")
    result = run_cli("batch", tmp_path / "in", "--shard", "2/2")
    assert result.exit_code == 2 and result.stderr.startswith("error: --shard")


def test_batch_output_is_a_file(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/a.jpg")
    (tmp_path / "out").write_text("")
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'out'}: is a file, not a folder\n"


def test_batch_missing_input_folder(tmp_path: Path) -> None:
    result = run_cli("batch", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such folder\n"


def test_batch_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """The Rich path (forced with TTY_COMPATIBLE=1): same files and summary, errors still on stderr."""
    write_photo(tmp_path / "in/a.jpg")
    write_photo(tmp_path / "in/sub/b.jpg", seed=1)
    (tmp_path / "in/c.jpg").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out")], env={"TTY_COMPATIBLE": "1"}
    )
    assert result.exit_code == 1, result.output
    assert "\x1b[" in result.stdout  # drawn for a terminal
    assert "2 converted, 0 skipped, 1 failed" in result.stdout
    assert "c.jpg" in result.stderr
    assert rel_files(tmp_path / "out") == {"a.dng", "sub/b.dng"}


def test_batch_bad_option_fails_before_creating_anything(tmp_path: Path) -> None:
    write_photo(tmp_path / "in/a.jpg")
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--camera", "nope")
    assert result.exit_code == 1 and result.stderr.startswith("error: unknown camera 'nope'")
    assert not (tmp_path / "out").exists()


def test_a_file_name_in_a_bracket_is_shown_as_it_is_on_the_progress_bar(tmp_path: Path) -> None:
    """Rich reads square brackets as markup: "IMG [edit].jpg" showed as "IMG .jpg"."""
    from rich.text import Text

    from rawback.console import RichReporter

    job = batch.Job(source=write_photo(tmp_path / "IMG [edit].jpg"), output=tmp_path / "IMG [edit].dng")
    reporter = RichReporter()
    with reporter:
        reporter.start([job])
        reporter.file_started(job)
        (task,) = reporter.progress.tasks
        assert Text.from_markup(task.description).plain == "IMG [edit].jpg"


def test_the_progress_bar_moves_within_a_photo_and_gives_back_on_failure(tmp_path) -> None:
    from rawback.batch import Outcome, Status
    from rawback.console import RichReporter

    jobs = sized_jobs(tmp_path, (1000, 3000))
    reporter = RichReporter()
    with reporter:
        reporter.start(jobs)
        task = reporter.progress.tasks[0]
        reporter.file_started(jobs[0])
        reporter.file_progress(jobs[0], 0.5)
        assert task.completed == pytest.approx(500)
        reporter.file_done(Outcome(jobs[0], Status.CONVERTED))
        assert task.completed == pytest.approx(1000)
        reporter.file_started(jobs[1])
        reporter.file_progress(jobs[1], 0.25)
        assert task.completed == pytest.approx(1750)
        reporter.file_done(Outcome(jobs[1], Status.FAILED, error="b.jpg: broken"))
        assert task.completed == pytest.approx(1000) and task.total == pytest.approx(1000)


def rawback_process(*args: object, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rawback", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def test_a_file_name_that_is_not_utf8_does_not_stop_the_batch(tmp_path: Path) -> None:
    """Such names (copied from another system) reach Python with surrogates, which a strict UTF-8
    stdout (the default under a UTF-8 locale) could not print: the first one stopped the batch."""
    folder = tmp_path / "in"
    write_photo(folder / "ok.jpg")
    os.rename(write_photo(folder / "x.jpg"), os.fsencode(folder) + b"/caf\xe9.jpg")
    process = rawback_process(
        "batch", folder, "-o", tmp_path / "out", "--method", "analytic", PYTHONIOENCODING="utf-8:strict"
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode(errors="replace")
    assert sorted(os.listdir(os.fsencode(tmp_path / "out"))) == [b"caf\xe9.dng", b"ok.dng"]
    assert b"caf\\udce9.jpg" in out


def test_sigterm_stops_a_batch_like_ctrl_c_and_leaves_no_partial_file(tmp_path: Path) -> None:
    """kill, timeout, docker stop and Slurm send SIGTERM: it must clean up as Ctrl-C does, say how
    to resume, and exit with 128 + 15."""
    import signal
    import time

    for i in range(60):
        write_photo(tmp_path / "in" / f"p{i:02}.jpg", size=(640, 480), seed=i)
    out = tmp_path / "out"
    process = rawback_process("batch", tmp_path / "in", "-o", out, "--method", "analytic")
    deadline = time.monotonic() + 120
    while not any(out.glob("*.dng")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    assert 0 < len(list(out.glob("*.dng"))) < 60
    assert "interrupted after" in err.decode() and "run the same command again to resume" in err.decode()


def test_a_malformed_user_profile_stops_the_batch_once_before_any_photo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "profiles"))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "broken.json").write_text("{not json")
    write_photo(tmp_path / "in/a.jpg")
    write_photo(tmp_path / "in/b.jpg", seed=1)
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--method", "analytic")
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "broken.json: not a valid camera profile" in line
    assert not list(tmp_path.rglob("*.dng"))


def test_an_unreadable_profile_folder_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker run --user` with another user's HOME: the folder exists but cannot be listed."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(folder))
    real_glob = Path.glob

    def glob(self: Path, pattern: str):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(folder))
        return real_glob(self, pattern)

    monkeypatch.setattr(Path, "glob", glob)
    write_photo(tmp_path / "in/a.jpg")
    result = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--method", "analytic")
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line == (
        f"error: {folder}: cannot read the profile folder (Permission denied); fix its permissions "
        "or point RAWBACK_PROFILE_DIR to another folder"
    )


def test_a_dng_another_batch_finished_meanwhile_counts_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one batch race for the same photos: the loser's photo is done, not failed,
    and it must not be told to pass --overwrite."""
    from rawback.errors import OutputExistsError

    job = batch.Job(write_photo(tmp_path / "a.jpg"), tmp_path / "out" / "a.dng")

    def the_other_process_wins(source, output, options, progress=None):
        output.write_bytes(b"a complete DNG")
        raise OutputExistsError(output)

    monkeypatch.setattr(batch, "convert_file", the_other_process_wins)
    kept = dict(skip_existing=True, create_folders=True, dry_run=False)
    assert batch.run_one(job, ConvertOptions(method="analytic"), **kept).status is batch.Status.SKIPPED
    (tmp_path / "out" / "a.dng").unlink()
    convert = dict(kept, skip_existing=False)  # `convert` named the file: an existing DNG is an error
    assert batch.run_one(job, ConvertOptions(method="analytic"), **convert).status is batch.Status.FAILED


def test_a_resumed_batch_removes_what_kill_9_left_and_nothing_else(tmp_path: Path) -> None:
    """No handler runs on SIGKILL: its temporary file stays. A resumed batch removes those of its
    own outputs that nobody has touched for an hour, and leaves every other file alone."""
    import time

    write_photo(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh, foreign = out / ".a.dng.k3j9x_ab.part", out / ".a.dng.zz81qq0w.part", out / ".b.dng.x.part"
    for path in (stale, fresh, foreign):
        path.write_bytes(b"half a DNG")
    hour_ago = time.time() - 3700
    for path in (stale, foreign):
        os.utime(path, (hour_ago, hour_ago))
    result = run_cli("batch", tmp_path / "in", "-o", out, "--method", "analytic")
    assert result.exit_code == 0, result.output
    assert "removed 1 temporary file(s)" in result.stderr
    assert not stale.exists() and fresh.exists() and foreign.exists()  # b.dng is not this batch's
    assert (out / "a.dng").is_file()


def test_sigterm_stops_eval_with_a_line_and_143(tmp_path: Path) -> None:
    """Every command says it was interrupted; eval writes no half report."""
    import signal

    from tests.helpers import write_synthetic_dng

    data = tmp_path / "raws"
    data.mkdir()
    for i in range(30):
        write_synthetic_dng(data / f"r{i:02}.dng", seed=i, height=288, width=352)
    reports = tmp_path / "reports"
    process = rawback_process("eval", "--data", data, "--method", "analytic", "--report-dir", reports)
    first = process.stdout.readline()  # "[1/30] evaluating r00.dng": the run has started
    assert b"evaluating" in first, first
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()
    assert "interrupted: no report was written" in err.decode()
    assert not reports.exists()


# --- issue 21: inputs that are not photo files ----------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_issue_21_a_fifo_named_like_a_photo_is_skipped_and_the_batch_goes_on(tmp_path: Path) -> None:
    """`mkfifo d/x.jpg` blocked the batch for ever: opening a FIFO waits for a writer."""
    folder = tmp_path / "in"
    write_photo(folder / "a.jpg")
    os.mkfifo(folder / "x.jpg")
    write_photo(folder / "z.jpg", seed=1)
    process = rawback_process("batch", folder, "-o", tmp_path / "out", "--method", "analytic")
    _, err = process.communicate(timeout=120)  # a hang fails here
    assert process.returncode == 1, err.decode(errors="replace")
    assert sorted(os.listdir(tmp_path / "out")) == ["a.dng", "z.dng"]
    assert err.decode().splitlines() == [
        f"error: {folder / 'x.jpg'}: is a FIFO (named pipe), not a photo file; skipped"
    ]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_issue_21_a_link_to_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A link to /dev/zero named z.jpg grew to 24 GB: the read is refused before it starts."""
    os.symlink("/dev/zero", tmp_path / "z.jpg")
    with pytest.raises(InputError, match="is a character device, not a photo file"):
        read_image(tmp_path / "z.jpg")


def test_issue_21_a_self_looping_link_does_not_stop_the_batch(tmp_path: Path) -> None:
    """A link to itself made Path.resolve() raise RuntimeError while planning: nothing converted."""
    folder = tmp_path / "in"
    write_photo(folder / "a.jpg")
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("dirloop", folder / "dirloop")
    result = run_cli("batch", folder, "-o", tmp_path / "out", "--method", "analytic")
    assert result.exit_code == 1, result.output
    assert sorted(os.listdir(tmp_path / "out")) == ["a.dng"]
    (line,) = result.stderr.splitlines()
    assert (
        line.startswith(f"error: {folder / 'loop.jpg'}: cannot read: ") and "Traceback" not in result.output
    )


def test_issue_21_control_characters_from_exif_and_names_are_printed_escaped(tmp_path: Path) -> None:
    """-v printed EXIF Make/Model and file names raw: an escape sequence could set the terminal's
    title or clear it, and a newline in a name split the output's lines."""
    import piexif

    folder = tmp_path / "in"
    photo = write_photo(folder / "a\nb.jpg")
    exif = {"0th": {piexif.ImageIFD.Make: b"Evil\x1b]0;owned\x07", piexif.ImageIFD.Model: b"Cam\x1b[2J"}}
    piexif.insert(piexif.dump(exif), str(photo))
    result = run_cli("convert", photo, "-o", tmp_path / "out", "--method", "analytic", "-v")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "Evil\\x1b]0;owned\\x07" in result.stdout
    assert not any(line.startswith("b.jpg") for line in result.stdout.splitlines())
    missing = folder / "c\x1b[2Jd.jpg"
    failed = run_cli("convert", missing, "-o", tmp_path / "out", "--method", "analytic")
    assert failed.stderr == f"error: {folder}/c\\x1b[2Jd.jpg: no such file\n"


def test_issue_21_a_full_disk_stops_the_batch_at_the_first_photo_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a full disk the batch converted every remaining photo only to fail each; now it stops,
    says so in its summary, leaves the finished DNGs whole and resumes when run again."""
    import errno

    import rawback.io.atomic

    folder, out = tmp_path / "in", tmp_path / "out"
    for index, name in enumerate(("a.jpg", "b.jpg", "c.jpg", "d.jpg")):
        write_photo(folder / name, seed=index)
    real_fsync, written = os.fsync, []

    def fsync(fd: int) -> None:  # the disk fills up after the first DNG
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(rawback.io.atomic.os, "fsync", fsync)
    # One photo at a time, so that b.jpg is the one that fails (tests/test_pipeline.py has the
    # pipelined batch on a full disk).
    result = run_cli("batch", folder, "-o", out, "--method", "analytic", "--in-flight", "1")
    assert result.exit_code == 1
    assert result.stderr == f"error: {folder / 'b.jpg'}: {out / 'b.dng'}: no space left on the device\n"
    assert "1 converted, 0 skipped, 1 failed" in result.stdout
    assert "stopped, the disk is full: 2 not tried" in result.stdout
    assert sorted(os.listdir(out)) == ["a.dng"]  # no partial file

    monkeypatch.setattr(rawback.io.atomic.os, "fsync", real_fsync)
    again = run_cli("batch", folder, "-o", out, "--method", "analytic")
    assert again.exit_code == 0 and "3 converted, 1 skipped, 0 failed" in again.stdout

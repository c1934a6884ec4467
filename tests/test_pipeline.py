"""Pipelined batches (rawback.pipeline) and cross-photo tile batching through them: every DNG is
bit-identical to converting its photo alone, results are reported in order, a bad file or a bug
fails its photo alone, a full disk stops new photos, and an interrupt stops every worker."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rawback import batch
from rawback.convert import ConvertOptions, convert_file
from rawback.diffusion_settings import DiffusionSettings
from rawback.inference import model_for
from rawback.network import tile_network
from rawback.pipeline import Cancelled, run_pipelined
from tests.helpers import sized_jobs, small_jpeg

# --- the pipeline alone ----------------------------------------------------------------------------


def test_results_come_in_order_whatever_finishes_first():
    delays = [0.2, 0.0, 0.1, 0.0, 0.05]
    seen_at_once = []
    running = threading.Semaphore(0)
    active = []

    def work(index: int, progress) -> int:
        active.append(index)
        seen_at_once.append(len(active))
        time.sleep(delays[index])
        progress(1.0)
        active.remove(index)
        running.release()
        return index

    started, done, progress = [], [], []
    not_run = run_pipelined(
        range(len(delays)),
        work,
        in_flight=3,
        on_start=started.append,
        on_progress=lambda item, fraction: progress.append(item),
        on_done=done.append,
    )
    assert not_run == 0 and started == done == list(range(len(delays)))
    assert sorted(progress) == list(range(len(delays))) and max(seen_at_once) <= 3


def test_stop_lets_the_photos_in_flight_finish_and_starts_no_more():
    done = []
    not_run = run_pipelined(
        range(10), lambda i, progress: i, in_flight=2, on_done=done.append, stop=lambda result: result == 3
    )
    assert done[:4] == [0, 1, 2, 3] and len(done) in (4, 5) and not_run == 10 - len(done)


def test_an_exception_that_escapes_the_work_ends_the_run():
    def work(i: int, progress) -> int:
        if i == 2:
            raise RuntimeError("escaped the per-photo boundary")
        return i

    with pytest.raises(RuntimeError, match="escaped"):
        run_pipelined(range(6), work, in_flight=2)


def test_an_interrupt_cancels_every_worker_and_reports_what_finished():
    cancelled, done = [], []

    def work(i: int, progress) -> int:
        if i == 0:
            return i  # finishes at once
        try:
            while True:  # a long photo, reporting its progress
                progress(0.5)
                time.sleep(0.01)
        except Cancelled:
            cancelled.append(i)
            raise

    def interrupt(item: int, fraction: float) -> None:
        raise KeyboardInterrupt  # Ctrl-C arrives while the calling thread shows progress

    with pytest.raises(KeyboardInterrupt):
        run_pipelined(range(5), work, in_flight=3, on_progress=interrupt, on_done=done.append)
    # 0 finished; each photo started after it was stopped; 4 (at least) never started
    assert done == [0] and sorted(cancelled) in ([1, 2], [1, 2, 3])
    assert not [t for t in threading.enumerate() if t.name.startswith("rawback-photo")]


# --- batches of real photos ------------------------------------------------------------------------


def test_batch_dngs_are_bit_identical_to_converting_each_photo_alone(tmp_path: Path) -> None:
    """Tiles of several photos share fixed-size network calls (rawback.schedule) while each photo
    keeps its own noise: the DNGs are byte for byte those of `convert` of each photo alone."""
    folder = tmp_path / "in"
    folder.mkdir()
    # 64 px tiles (32 packed, overlap 8): the first two photos have one tile shape (6 tiles each,
    # so with 4 per call each ends in a partial call), the third another, the last is smaller
    # than a tile; a corrupt file sits among them.
    sizes = {"a.jpg": (150, 110), "b.jpg": (150, 110), "c.jpg": (96, 130), "d.jpg": (50, 40)}
    for seed, (name, size) in enumerate(sizes.items()):
        small_jpeg(folder / name, seed=seed, size=size)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    settings = DiffusionSettings(
        sampler="heun", steps=2, seed=7, tile=64, overlap=16, tile_batch=4, residual="full", device="cpu"
    )
    options = ConvertOptions(diffusion=settings, maker_notes=False)
    for name in sizes:
        convert_file(folder / name, tmp_path / f"alone-{Path(name).stem}.dng", options)
    scheduler = tile_network(model_for(settings), settings).scheduler
    mixed_before = scheduler.mixed_calls
    outcomes: list[batch.Outcome] = []
    jobs = batch.plan_folder(folder, tmp_path / "out")
    summary = batch.run_jobs(jobs, options, in_flight=4, on_done=outcomes.append)
    assert [o.job for o in outcomes] == jobs  # reported in order
    assert (summary.converted, summary.failed) == (len(sizes), 1)
    for name in sizes:
        stem = Path(name).stem
        assert (tmp_path / "out" / f"{stem}.dng").read_bytes() == (
            tmp_path / f"alone-{stem}.dng"
        ).read_bytes()
    assert scheduler.mixed_calls > mixed_before  # tiles of different photos did share calls


def test_a_full_disk_stops_new_photos_and_finishes_those_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import rawback.io.atomic

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for index in range(6):
        small_jpeg(folder / f"p{index}.jpg", seed=index)
    real_fsync, written = rawback.io.atomic.os.fsync, []

    def fsync(fd: int) -> None:  # room for one DNG
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(rawback.io.atomic.os, "fsync", fsync)
    jobs = batch.plan_folder(folder, out)
    summary = batch.run_jobs(jobs, ConvertOptions(method="analytic"), in_flight=2)
    assert summary.converted == 1 and summary.failed >= 1 and summary.not_run >= 3
    assert summary.converted + summary.failed + summary.not_run == len(jobs)
    assert len([p for p in out.iterdir() if p.suffix == ".dng"]) == 1 == len(list(out.iterdir()))


def test_the_progress_bar_adds_up_the_photos_in_flight(tmp_path: Path) -> None:
    from rawback.batch import Outcome, Status
    from rawback.console import RichReporter

    jobs = sized_jobs(tmp_path, (1000, 3000))
    reporter = RichReporter()
    with reporter:
        reporter.start(jobs)
        task = reporter.progress.tasks[0]
        for job in jobs:
            reporter.file_started(job)
        reporter.file_progress(jobs[1], 0.5)
        reporter.file_progress(jobs[0], 0.5)
        assert task.completed == pytest.approx(500 + 1500)
        reporter.file_done(Outcome(jobs[0], Status.CONVERTED))
        assert task.completed == pytest.approx(1000 + 1500)
        reporter.file_done(Outcome(jobs[1], Status.FAILED, error="b.jpg: broken"))
        assert task.completed == pytest.approx(1000) and task.total == pytest.approx(1000)


def test_a_stop_from_a_later_photo_that_finishes_first_starts_nothing_more() -> None:
    """Photo 1 fails (disk full) while photo 0 is still working: no third photo may start in the
    meantime, although photo 1's result is reported only after photo 0's."""
    one_done = threading.Event()
    started: list[int] = []

    def work(item: int, progress) -> str:
        started.append(item)
        if item == 0:
            assert one_done.wait(10)
            time.sleep(0.2)  # time for the run to (wrongly) start another photo
            return "ok"
        one_done.set()
        return "full"

    reported: list[str] = []
    not_run = run_pipelined(
        list(range(5)), work, in_flight=2, on_done=reported.append, stop=lambda result: result == "full"
    )
    assert started == [0, 1] and not_run == 3
    assert reported == ["ok", "full"]  # still in the photos' order


def test_on_the_cpu_a_network_converts_one_photo_at_a_time_and_the_analytic_method_two() -> None:
    # A second photo's CPU stages beside a network that takes every core made a 2-core batch slower
    # (docs/experiments.md); the analytic method has no network and gains from a second photo.
    assert batch.default_in_flight(ConvertOptions(method="analytic")) == 2
    for method in ("diffusion", "invisp", "latent"):
        options = ConvertOptions(method=method, diffusion=DiffusionSettings(device="cpu"))
        assert batch.default_in_flight(options) == 1, method

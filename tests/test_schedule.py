"""The tile scheduler (rawback.schedule): fixed-size calls, tiles of several photos in one call
with each photo's result unchanged, out-of-memory halving, errors and cancelled clients. The
property it rests on, that the network's prediction for a tile does not depend on the other tiles
of a call of a given size, is tested on the real network in tests/test_network.py."""

from __future__ import annotations

import threading

import pytest
import torch

from rawback.sampling import initial_noise, karras_sigmas, sample_euler, sample_heun
from rawback.schedule import TileScheduler
from rawback.tiling import TiledDenoiser
from tests.test_tiling import CC, C, PixelModel, memory_for

SIGMA = torch.tensor(0.7, dtype=torch.float64)
TIMEOUT = 120  # seconds: a thread still running after this is a deadlock


def images(*sizes: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (initial_noise((1, C, h, w), 10 * i), initial_noise((1, CC, h, w), 10 * i + 1))
        for i, (h, w) in enumerate(sizes)
    ]


def run_in_threads(jobs) -> list:
    """Run each callable in a thread of its own; their results, in order; errors re-raised."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "a client never finished: the scheduler deadlocked"
    if errors:
        raise errors[0]
    return results


def sample_one(
    scheduler: TileScheduler,
    x: torch.Tensor,
    cond: torch.Tensor,
    sampler=sample_heun,
    together: threading.Barrier | None = None,
):
    """A photo's sampling through `scheduler`; with `together`, it starts once every client of the
    barrier has registered, so that their calls overlap whatever the threads' timing."""
    tiled = TiledDenoiser(scheduler, tile=16, overlap=4)
    sigmas = karras_sigmas(3, 0.002, 10.0)
    with scheduler.client():
        if together is not None:
            together.wait(TIMEOUT)
        return sampler(lambda x_, s: tiled(x_, s, cond), x * sigmas[0], sigmas)


def test_every_call_has_the_batch_size_when_padded():
    model = PixelModel()
    scheduler = TileScheduler(model, batch=4, pad=True)
    ((x, cond),) = images((37, 53))
    out = TiledDenoiser(scheduler, tile=16, overlap=4)(x, SIGMA, cond)
    assert set(model.calls) == {4} and scheduler.calls == len(model.calls)
    unpadded = TiledDenoiser(PixelModel(), tile=16, overlap=4, tile_batch=4)(x, SIGMA, cond)
    assert torch.equal(out, unpadded)  # the copies that fill the last call are dropped


def test_photos_sharing_calls_get_what_they_get_alone():
    # Two photos of one tile shape share calls; a third of another shape (and one smaller than a
    # tile) never shares a call with them; all are sampled at once, each from its own thread,
    # with a two-evaluation sampler, so the photos are at different steps within one call.
    photos = images((37, 53), (37, 53), (21, 30), (9, 7))  # 15, 15, 6 and 1 tiles
    alone = [sample_one(TileScheduler(PixelModel(), batch=4, pad=True), x, c) for x, c in photos]
    model = PixelModel()
    shared = TileScheduler(model, batch=4, pad=True)
    barrier = threading.Barrier(len(photos))
    together = run_in_threads(
        [lambda x=x, c=c: sample_one(shared, x, c, together=barrier) for x, c in photos]
    )
    for one, both in zip(alone, together, strict=True):
        assert torch.equal(one, both)
    assert shared.mixed_calls > 0 and set(model.calls) == {4}


def test_a_partial_batch_waits_for_the_other_clients_tiles():
    # Two one-tile photos at batch 2: each evaluation of both runs as one call, not two.
    model = PixelModel()
    shared = TileScheduler(model, batch=2, pad=True)
    photos = images((12, 12), (12, 12))
    barrier = threading.Barrier(2)
    run_in_threads([lambda x=x, c=c: sample_one(shared, x, c, sample_euler, barrier) for x, c in photos])
    assert shared.calls == 3 and shared.mixed_calls == 3  # 3 Euler steps


def test_out_of_memory_halves_the_batch_and_retries_mixed_calls():
    model = PixelModel()
    photos = images((37, 53), (30, 40))
    alone = [sample_one(TileScheduler(PixelModel(), batch=2, pad=True), x, c) for x, c in photos]
    shared = TileScheduler(memory_for(model, 2), batch=8, pad=True)
    barrier = threading.Barrier(2)
    together = run_in_threads(
        [lambda x=x, c=c: sample_one(shared, x, c, together=barrier) for x, c in photos]
    )
    assert shared.batch == 2 and set(model.calls) == {2}
    for one, both in zip(alone, together, strict=True):
        assert torch.equal(one, both)


def test_out_of_memory_with_one_tile_fails_its_photo():
    def hopeless(x, sigma, cond):
        raise torch.OutOfMemoryError("no memory at all")

    scheduler = TileScheduler(hopeless, batch=4, pad=True)
    ((x, cond),) = images((20, 20))
    with pytest.raises(torch.OutOfMemoryError):
        TiledDenoiser(scheduler, tile=16, overlap=4)(x, SIGMA, cond)
    assert scheduler.batch == 1


def test_an_error_fails_the_photos_of_its_call_and_not_the_others():
    model = PixelModel()
    bad = torch.full((1, C, 20, 20), float("nan"), dtype=torch.float64)

    def picky(x, sigma, cond):
        if torch.isnan(x).any():
            raise RuntimeError("not a number")
        return model(x, sigma, cond)

    scheduler = TileScheduler(picky, batch=1, pad=True)
    (x, cond), (_, cond2) = images((37, 53), (20, 20))
    jobs = [lambda: sample_one(scheduler, x, cond), lambda: sample_one(scheduler, bad, cond2)]
    with pytest.raises(RuntimeError, match="not a number"):
        run_in_threads(jobs)
    # The good photo finished (run_in_threads waited for it) with what it gets alone.
    assert torch.equal(run_in_threads(jobs[:1])[0], sample_one(TileScheduler(PixelModel(), batch=1), x, cond))


def test_a_cancelled_client_does_not_hold_up_the_others():
    scheduler = TileScheduler(PixelModel(), batch=4, pad=True)
    (x, cond), (x2, cond2) = images((37, 53), (37, 53))

    def cancelled() -> None:
        def stop(done: int, total: int) -> None:
            raise KeyboardInterrupt  # what a pipeline's cancel does in a photo's progress callback

        with scheduler.client():
            TiledDenoiser(scheduler, tile=16, overlap=4, progress=stop)(x2, SIGMA, cond2)

    with pytest.raises(KeyboardInterrupt):
        run_in_threads([cancelled, lambda: sample_one(scheduler, x, cond)])
    assert scheduler._open == 0 and scheduler._registered == 0
    assert not any(scheduler._pending.values())

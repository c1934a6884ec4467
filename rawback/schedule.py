"""Tiles of many photos in fixed-size network batches: the scheduler behind cross-photo batching.

A tiled denoiser (rawback.tiling) hands every tile of one network evaluation of one photo to a
`TileScheduler` as a `TileRequest` and blends the predictions as they come back. Several photos
(the threads of a pipelined batch, rawback.pipeline) share one scheduler per model, so their tiles
fill the same network calls: a small photo, or the last few tiles of a large one, no longer makes
a call of its own. Each photo keeps its own sampler, noise and x: a tile is cut from the x of the
request it belongs to when its batch is formed, so every tile of a photo's step k sees that
photo's x at step k, whatever step the photos beside it in the batch are at (sigma, like the
photo's camera and finish conditions, goes with each tile).

Why results do not depend on the batch's other members: every layer of the network computes each
sample on its own (GroupNorm, not BatchNorm; attention within a tile), and with `pad=True` every
network call has exactly `batch` tiles, the last partial batch padded with copies of its last
tile. A call's shape therefore never changes, so neither does the kernel that oneDNN or cuDNN
picks for it: a tile's prediction is bit-identical whichever other tiles share its call and at
whichever position (tests/test_schedule.py; a different batch *size* does change the last bits on
the CPU, docs/model.md#determinism). Only tiles of one shape share a call.

There is no scheduler thread: a client waiting for its tiles runs the next batch itself when the
network is free ("caller runs"), one batch at a time. A batch is run when it is full, or when it
cannot fill before its results are needed: when every registered client has a request waiting.
A client registers for the whole of its sampling (`client()`), so that while it does its sampler
arithmetic between two evaluations the others wait for its next tiles instead of running half
batches. Unregistered callers count as registered while their request is open.

On `torch.OutOfMemoryError` the batch size is halved and the batch retried; out of memory with
one tile, like any other error of the network, fails the requests whose tiles were in the call
(a tile is never skipped).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

# (x_tiles (B, C, t, t), sigma (B,) float64, cond_tiles (B, Cc, t, t), *conditions (B, ...))
#   -> x0 tiles (B, C, t, t)
NetworkCall = Callable[..., Tensor]
Tile = tuple[int, slice, slice]  # (image in the request's batch, rows, cols)


class TileRequest:
    """One evaluation of a tiled denoiser: the tiles to run and the tensors they are cut from.

    Parameters:
        x, cond: (N, C, H, W) and (N, Cc, H, W), the full images the tiles are cut from.
        sigma: the noise level, a 0-d CPU tensor (read once here, so building a batch never waits
            for a GPU).
        tiles: (image, rows, cols) of every tile, all of one size.
        conditions: per-image tensors, (N, ...) each (the camera and finish), one row per tile.
    """

    def __init__(
        self, x: Tensor, sigma: Tensor, cond: Tensor, tiles: Sequence[Tile], conditions: Sequence[Tensor] = ()
    ) -> None:
        if not tiles:
            raise ValueError("a request needs at least one tile")
        rows, cols = tiles[0][1:]
        self.shape = (rows.stop - rows.start, cols.stop - cols.start)
        self.x, self.cond, self.tiles, self.conditions = x, cond, list(tiles), tuple(conditions)
        self.sigma = float(sigma)
        self.results: deque[tuple[list[int], Tensor]] = deque()  # (tile indices, predictions)
        self.error: BaseException | None = None
        self.delivered = 0  # tiles whose predictions came back
        self.open = False  # submitted and not yet withdrawn

    def finished(self) -> bool:
        return self.delivered == len(self.tiles) or self.error is not None


class TileScheduler:
    """Runs the tiles of every request it is given in batches of `batch` tiles of one shape.

    Parameters:
        network: the batched network call (NetworkCall).
        batch: tiles per call, >= 1. Halved on torch.OutOfMemoryError (and kept so).
        device: where each batch is sent before `network`; None keeps the requests' device.
        pad: fill every partial batch up to `batch` with copies of its last tile, so every call has
            one shape (bit-identical results whatever the batch composition, see above).
    """

    def __init__(
        self, network: NetworkCall, *, batch: int, device: torch.device | str | None = None, pad: bool = False
    ) -> None:
        if batch < 1:
            raise ValueError(f"the tile batch must be >= 1, got {batch}")
        self.network = network
        self.batch = batch
        self.device = None if device is None else torch.device(device)
        self.pad = pad
        self._lock = threading.Condition()
        self._pending: dict[tuple[int, int], deque[tuple[int, TileRequest, int]]] = {}  # by tile shape
        self._order = itertools.count()  # arrival order of the tiles
        self._registered = 0  # clients sampling (client()) plus unregistered open requests
        self._open = 0  # requests submitted and not finished
        self._running = False  # a batch is in the network (one at a time)
        self._local = threading.local()
        self.calls = 0  # network calls made, for tests and benchmarks
        self.mixed_calls = 0  # calls that held tiles of more than one request

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Register the calling thread for the duration of its sampling (see the module's doc)."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth == 0:
            with self._lock:
                self._registered += 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._lock:
                    self._registered -= 1
                    self._lock.notify_all()

    def evaluate(self, request: TileRequest) -> Iterator[tuple[list[int], Tensor]]:
        """Submit `request` and yield (tile indices, predictions) as its batches come back; the
        network runs in this thread whenever it is this thread's turn. Raises what the network
        raised for a batch holding its tiles."""
        ephemeral = getattr(self._local, "depth", 0) == 0
        with self._lock:
            self._registered += ephemeral
            for index in range(len(request.tiles)):
                self._pending.setdefault(request.shape, deque()).append((next(self._order), request, index))
            request.open = True
            self._open += 1
            self._lock.notify_all()
        try:
            while True:
                chunk = None
                with self._lock:
                    while not request.results and request.error is None and not request.finished():
                        chunk = None if self._running else self._take()
                        if chunk is not None:
                            self._running = True
                            break
                        self._lock.wait()
                    if chunk is None:
                        if request.results:
                            delivered = request.results.popleft()
                        elif request.error is not None:
                            raise request.error
                        else:
                            return
                if chunk is not None:
                    self._run(chunk)
                    continue
                yield delivered
        finally:
            with self._lock:
                self._withdraw(request)
                self._registered -= ephemeral
                self._lock.notify_all()

    # --- with the lock held ----------------------------------------------------------------------

    def _take(self) -> list[tuple[int, TileRequest, int]] | None:
        """The next batch to run, or None when it is better to wait: the oldest full batch of one
        shape, else, when no client can add tiles before results come back, the oldest partial."""
        queues = [queue for queue in self._pending.values() if queue]
        if not queues:
            return None
        full = [queue for queue in queues if len(queue) >= self.batch]
        if full:
            queue = min(full, key=lambda q: q[0][0])
        elif self._open >= self._registered:
            queue = min(queues, key=lambda q: q[0][0])
        else:
            return None
        return [queue.popleft() for _ in range(min(self.batch, len(queue)))]

    def _withdraw(self, request: TileRequest) -> None:
        """Close `request`; its tiles still waiting (it failed or was cancelled) are not run."""
        if request.open:
            request.open = False
            self._open -= 1
        queue = self._pending.get(request.shape)
        if queue and request.delivered < len(request.tiles):
            self._pending[request.shape] = deque(item for item in queue if item[1] is not request)

    def _deliver(self, chunk: list[tuple[int, TileRequest, int]], pred: Tensor) -> None:
        start = 0
        for request, group in itertools.groupby(chunk, key=lambda item: item[1]):
            indices = [index for _, _, index in group]
            if request.open:  # a withdrawn request's predictions are dropped
                request.results.append((indices, pred[start : start + len(indices)]))
                request.delivered += len(indices)
                if request.finished():
                    request.open = False
                    self._open -= 1
            start += len(indices)

    def _fail(self, chunk: list[tuple[int, TileRequest, int]], error: BaseException) -> None:
        for request in {id(item[1]): item[1] for item in chunk}.values():
            if request.open:
                request.error = error
                self._withdraw(request)

    # --- the network, without the lock ----------------------------------------------------------

    def _run(self, chunk: list[tuple[int, TileRequest, int]]) -> None:
        size = self.batch if self.pad else len(chunk)
        pred: Tensor | None = None
        out_of_memory = False
        try:
            pred = self._call(chunk, size)
        except torch.OutOfMemoryError as exc:
            out_of_memory = True
            if size == 1:
                with self._lock:
                    self._fail(chunk, exc)
        except Exception as exc:
            with self._lock:
                self._fail(chunk, exc)
        except BaseException:
            # Ctrl-C in the thread that was running the batch: give the tiles back to the others.
            with self._lock:
                self._requeue(chunk)
                self._running = False
                self._lock.notify_all()
            raise
        if out_of_memory and size > 1 and torch.cuda.is_available():
            # Emptied outside the except block, once the exception (and the frames holding the
            # failed batch's tensors) is released.
            torch.cuda.empty_cache()
        with self._lock:
            if out_of_memory and size > 1:
                self.batch = max(1, min(self.batch, size // 2))
                self._requeue(chunk)
            elif pred is not None:
                self._deliver(chunk, pred)
            self._running = False
            self._lock.notify_all()

    def _requeue(self, chunk: list[tuple[int, TileRequest, int]]) -> None:
        for item in reversed(chunk):
            if item[1].open:
                self._pending.setdefault(item[1].shape, deque()).appendleft(item)

    def _call(self, chunk: list[tuple[int, TileRequest, int]], size: int) -> Tensor:
        tiles = [(request, request.tiles[index]) for _, request, index in chunk]
        tiles += [tiles[-1]] * (size - len(tiles))  # padding: copies of the last tile
        x = torch.stack([request.x[b, :, rows, cols] for request, (b, rows, cols) in tiles])
        cond = torch.stack([request.cond[b, :, rows, cols] for request, (b, rows, cols) in tiles])
        conditions = [
            torch.stack([request.conditions[k][b] for request, (b, _, _) in tiles])
            for k in range(len(tiles[0][0].conditions))
        ]
        device = self.device if self.device is not None else x.device
        sigma = _sigmas([request.sigma for request, _ in tiles], device)
        if self.device is not None:
            x, cond = x.to(self.device), cond.to(self.device)
            conditions = [c.to(self.device) for c in conditions]
        self.calls += 1
        self.mixed_calls += len({id(item[1]) for item in chunk}) > 1
        pred = self.network(x, sigma, cond, *conditions)
        if pred.shape != x.shape:
            raise ValueError(f"the network returned shape {tuple(pred.shape)} for tiles {tuple(x.shape)}")
        return pred[: len(chunk)]


def _sigmas(values: list[float], device: torch.device) -> Tensor:
    """(B,) float64 sigma per tile on `device`, made there from Python floats: one fill per run of
    equal values, no host-to-device copy (which could wait for the GPU)."""
    runs = [(value, len(list(group))) for value, group in itertools.groupby(values)]
    return torch.cat([torch.full((n,), value, dtype=torch.float64, device=device) for value, n in runs])

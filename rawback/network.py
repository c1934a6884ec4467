"""The denoiser's network over batches of tiles, at the speed of its device.

`tile_network(model, settings)` is the one `TileNetwork` of a loaded model and its settings: the
network call rawback.schedule.TileScheduler batches the tiles of every photo into, and that
scheduler. What makes it fast, and why each is safe:

- bfloat16 autocast around the network only (rawback.device.uses_bf16 decides); the sampler, the
  noise and the blend stay in float64 on the CPU, float32 on a GPU (EDM does the same).
- Channels-last (NHWC) weights (inference.cached_model) and tiles, which oneDNN and cuDNN convolve
  without reordering every activation.
- A fixed call shape: every call has `batch` tiles (the scheduler pads the last), so cuDNN's
  autotuner (`--autotune`: torch.backends.cudnn.benchmark) and `torch.compile` (`--compile`)
  see one shape per tile size instead of a new one for every photo's last batch. Autotuning times
  several algorithms and keeps the fastest, which can differ between two runs, and with it the
  last bits of a result: it is therefore asked for, not on by default.
- On a GPU, when `--tile-batch` is not given, the batch is chosen from the free memory
  (`torch.cuda.mem_get_info`) and the measured memory of one tile; the scheduler halves it if the
  GPU still runs out of memory.
- Pinned, reused host buffers (`HostStaging`) for the copies of a photo to the GPU and of its
  prediction back: page-locked memory is copied by DMA, without a staging copy in the driver.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable

import torch
from torch import Tensor

from rawback.device import autocast, uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.model.denoiser import RawbackModel
from rawback.schedule import TileScheduler

FREE_MEMORY_SHARE = 0.5  # of the GPU's free memory for the tiles of one call: photos in flight need the rest
MAX_TILE_BATCH = 64  # beyond this a GPU is long full; larger calls only delay the first results
OTHER_GPU_TILE_BATCH = 4  # an Apple GPU's (MPS): torch reports no free memory there


def tile_batch_for_memory(
    free_bytes: int, tile_bytes: int, *, share: float = FREE_MEMORY_SHARE, cap: int = MAX_TILE_BATCH
) -> int:
    """The largest power of two of tiles, at most `cap`, whose memory (`tile_bytes` each) fits in
    `share` of `free_bytes`; at least 1 (the scheduler halves on out-of-memory anyway). Powers of
    two keep the choice stable when the free memory moves a little between runs."""
    if tile_bytes <= 0:
        return cap
    fits = int(free_bytes * share // tile_bytes)
    return max(1, min(cap, 2 ** int(math.log2(fits)) if fits >= 1 else 1))


class TileNetwork:
    """The model's denoiser D(x, sigma, cond, camera, finish) over a batch of tiles on its device.

    Returns float32 predictions where the model is: the caller blends them there (on a GPU, in
    float32, without a copy to the host).
    """

    def __init__(self, model: RawbackModel, settings: DiffusionSettings) -> None:
        self.device = next(model.parameters()).device
        self.bf16 = uses_bf16(settings.precision, self.device)
        self.tile, tile_batch = settings.tiling(self.device.type)
        self._eager = model.denoiser
        self._denoiser: Callable[..., Tensor] = model.denoiser
        if settings.compile:
            # dynamic=False: the scheduler's calls have one shape per tile size, each compiled once.
            self._denoiser = torch.compile(model.denoiser, dynamic=False)
        if self.device.type == "cuda" and settings.autotune:
            torch.backends.cudnn.benchmark = True
        self.on_gpu = self.device.type == "cuda"
        # Where a photo's tensors live while it is sampled, and the blend's dtype: on a GPU the whole
        # photo stays there and is blended in float32; on the CPU as before, float64.
        self.state_device = self.device if self.on_gpu else torch.device("cpu")
        self.blend_dtype = torch.float32 if self.on_gpu else None
        self.staging = HostStaging(self.device) if self.on_gpu else None
        if tile_batch is None:  # a GPU's default: from its free memory where torch can tell
            tile_batch = self._batch_for_free_memory(model) if self.on_gpu else OTHER_GPU_TILE_BATCH
        self.scheduler = TileScheduler(self, batch=tile_batch, pad=True)

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor, camera: Tensor, finish: Tensor) -> Tensor:
        return self._run(self._denoiser, x, sigma, cond, camera, finish)

    def _run(
        self,
        denoiser: Callable[..., Tensor],
        x: Tensor,
        sigma: Tensor,
        cond: Tensor,
        camera: Tensor,
        finish: Tensor,
    ) -> Tensor:
        device = self.device
        with autocast(device, self.bf16):
            out = denoiser(
                x.to(device).contiguous(memory_format=torch.channels_last),
                sigma.to(device),
                cond.to(device).contiguous(memory_format=torch.channels_last),
                camera.to(device),
                finish.to(device),
            )
        return out.float()

    @torch.no_grad()
    def _batch_for_free_memory(self, model: RawbackModel) -> int:
        """Tiles per call from the GPU's free memory and the measured peak of one full-size tile
        (eager, so that `--compile` does not compile a shape only this probe uses)."""
        side = self.tile // 2  # packed pixels
        finish = model.config.global_head.finish_channels
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self._run(
            self._eager,
            torch.zeros(1, 4, side, side, device=self.device),
            torch.ones(1, dtype=torch.float64, device=self.device),
            torch.zeros(1, 16, side, side, device=self.device),
            torch.zeros(1, 12, device=self.device),
            torch.zeros(1, finish, device=self.device),
        )
        torch.cuda.synchronize(self.device)  # note: a CPU-GPU sync point, once per model
        tile_bytes = torch.cuda.max_memory_allocated(self.device) - before
        free, _ = torch.cuda.mem_get_info(self.device)
        return tile_batch_for_memory(free, tile_bytes)

    def upload(self, tensor: Tensor) -> Tensor:
        """A CPU tensor on `state_device` (through a pinned buffer on a GPU); one already there as is."""
        if self.staging is None or tensor.device == self.device:
            return tensor
        return self.staging.upload(tensor)

    def download(self, tensor: Tensor) -> Tensor:
        """A tensor of `state_device` on the CPU (through a pinned buffer from a GPU)."""
        return tensor if self.staging is None else self.staging.download(tensor)


class HostStaging:
    """Pinned host buffers for copies between the CPU and one GPU, kept and reused by size.

    A buffer goes back to the pool with an event recorded after its copy, and is reused only once
    that event has completed, so a copy still in flight is never overwritten. Thread-safe: photos
    of a pipelined batch upload and download from their own threads.
    """

    MAX_BYTES = 2 << 30  # pinned memory kept for reuse; more is freed (it is the host's, unswappable)

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._lock = threading.Lock()
        self._pool: dict[tuple[int, torch.dtype], list[tuple[Tensor, torch.cuda.Event]]] = {}
        self._bytes = 0

    def _take(self, numel: int, dtype: torch.dtype) -> Tensor:
        with self._lock:
            kept = self._pool.get((numel, dtype))
            if kept:
                buffer, event = kept.pop()
                self._bytes -= buffer.numel() * buffer.element_size()
            else:
                buffer, event = torch.empty(numel, dtype=dtype, pin_memory=True), None
        if event is not None:
            event.synchronize()  # normally long complete
        return buffer

    def _give(self, buffer: Tensor) -> None:
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        size = buffer.numel() * buffer.element_size()
        with self._lock:
            if self._bytes + size <= self.MAX_BYTES:
                self._pool.setdefault((buffer.numel(), buffer.dtype), []).append((buffer, event))
                self._bytes += size

    def upload(self, tensor: Tensor) -> Tensor:
        buffer = self._take(tensor.numel(), tensor.dtype)
        staged = buffer.view(tensor.shape)
        staged.copy_(tensor)
        out = staged.to(self.device, non_blocking=True)
        self._give(buffer)
        return out

    def download(self, tensor: Tensor) -> Tensor:
        buffer = self._take(tensor.numel(), tensor.dtype)
        staged = buffer.view(tensor.shape)
        staged.copy_(tensor, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()  # note: the CPU-GPU sync point of a photo
        out = staged.clone()
        self._give(buffer)
        return out


_networks: weakref.WeakKeyDictionary[RawbackModel, dict[tuple, TileNetwork]] = weakref.WeakKeyDictionary()
_networks_lock = threading.Lock()


def tile_network(model: RawbackModel, settings: DiffusionSettings) -> TileNetwork:
    """The one TileNetwork (and so the one tile scheduler) of `model` under these settings: every
    photo converted with them in this process shares its batches."""
    device_type = next(model.parameters()).device.type
    key = (settings.tiling(device_type), settings.precision, settings.compile, settings.autotune)
    with _networks_lock:
        networks = _networks.setdefault(model, {})
        if key not in networks:
            networks[key] = TileNetwork(model, settings)
        return networks[key]

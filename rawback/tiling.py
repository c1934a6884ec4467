"""Tiled inference over packed images, so any image size fits in bounded device memory.

Images here are packed mosaics (N, C, H, W): H and W count *packed* pixels, each a 2x2 Bayer block.
Every tile offset is therefore an even offset in the mosaic and the CFA phase never shifts between
tiles: each tile is an RGGB mosaic like the whole image.

Along each axis the grid uses the fewest tiles of at most `tile` pixels that overlap by at least
`overlap`, then shrinks them to the smallest equal size that still covers the axis with that many,
spread evenly from the first pixel to the last. Every pixel is covered, all tiles have one size
(the image's, when it is smaller than a tile), and no work goes into a last tile that mostly
repeats its neighbour: a 640x480 photo (320x240 packed, 160-pixel tiles, overlap 32) is cut into
six tiles of 128x136 instead of six of 160x160, 32 % less network work. Overlapping predictions
are blended with smooth weights that fall towards each tile's border, where the network saw the
least context. `TiledDenoiser` wraps a batched network call into one
seamless full-image denoiser, so samplers (rawback.sampling) never know about tiles:

    tiled = TiledDenoiser(denoise_batch, tile=256, overlap=32, tile_batch=8, device="cuda")
    x0 = sample_heun(lambda x, sigma: tiled(x, sigma, cond), x, sigmas)

The full image and the blend accumulators stay where `x` is (the CPU, or the GPU when
rawback.inference keeps a photo there while it is sampled); only one batch of tiles at a time goes
to the network. The batches are formed by a rawback.schedule.TileScheduler, which may be shared
by several photos so that their tiles fill the same network calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rawback.schedule import TileRequest, TileScheduler

# (x_tiles (B, C, t, t), sigma (B,) float64, cond_tiles (B, Cc, t, t), *conditions) -> x0 (B, C, t, t).
BatchDenoiser = Callable[..., Tensor]
Progress = Callable[[int, int], None]


def _check_tiling(tile: int, overlap: int) -> None:
    if not tile > overlap >= 0:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")


def axis_tiles(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """(size, start offsets) of the tiles along an axis of `length` packed pixels.

    The fewest tiles of at most `tile` pixels whose neighbours share at least `overlap` pixels,
    at the smallest equal size that covers `length` with that many, from 0 to the end exactly.
    When length <= tile there is one tile, at 0, of the image's size.
    """
    _check_tiling(tile, overlap)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if length <= tile:
        return length, [0]
    count = math.ceil((length - overlap) / (tile - overlap))  # >= 2
    # count * size - (count - 1) * overlap >= length, so consecutive starts (floored, at most
    # ceil((length - size) / (count - 1)) apart) keep at least `overlap` pixels in common.
    size = math.ceil((length + (count - 1) * overlap) / count)
    return size, [i * (length - size) // (count - 1) for i in range(count)]


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of every tile, row-major; all tiles have one size, at most tile x tile."""
    th, row_starts = axis_tiles(height, tile, overlap)
    tw, col_starts = axis_tiles(width, tile, overlap)
    return [(slice(r, r + th), slice(c, c + tw)) for r in row_starts for c in col_starts]


def _ramp(n: int, overlap: int, dtype: torch.dtype, device: torch.device | str | None = None) -> Tensor:
    # Raised cosine over `overlap` pixels at each end, sampled at pixel centres ((i + 0.5) / overlap)
    # so that even the outermost pixel keeps weight > 0: at the image border a single tile covers
    # it and its weight must not vanish. Ramps of a tile shorter than 2 * overlap meet in the middle.
    # Made where it is used: a copy from the host would wait for a GPU.
    if overlap == 0:
        return torch.ones(n, dtype=torch.float64, device=device).to(dtype)
    i = torch.arange(n, dtype=torch.float64, device=device)
    dist = torch.minimum(i, n - 1 - i)  # pixels to the nearer end
    t = ((dist + 0.5) / overlap).clamp(max=1.0)
    return torch.sin(0.5 * math.pi * t).square().to(dtype)


def blend_weights(
    h: int, w: int, overlap: int, *, dtype: torch.dtype, device: torch.device | str | None = None
) -> Tensor:
    """(h, w) blend weights of one tile: 1 inside, raised-cosine ramps over `overlap` pixels at each
    edge, strictly positive everywhere (the corner pixel of a 64-pixel overlap gets about 1e-7)."""
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    return _ramp(h, overlap, dtype, device)[:, None] * _ramp(w, overlap, dtype, device)[None, :]


class TiledDenoiser:
    """A full-image denoiser `(x, sigma, cond) -> x0` built from a batched per-tile network call.

    Parameters:
        denoise_batch: the network over a batch of tiles, (x_tiles, sigma, cond_tiles, *conditions)
            -> x0 tiles, shapes (B, C, t, t), (B,) float64, (B, Cc, t, t), (B, ...) each; or a
            rawback.schedule.TileScheduler that runs it, shared with other photos (cross-photo
            batching; `tile_batch` and `device` are then the scheduler's).
        tile: tile side in packed pixels; smaller images use one tile of the image's size.
        overlap: packed pixels shared by neighbouring tiles and blended, 0 <= overlap < tile.
        tile_batch: tiles per network call. Halved (and kept so for later calls) whenever the call
            raises torch.OutOfMemoryError; any other error propagates.
        device: where each batch of tiles is sent before `denoise_batch`; None keeps them where `x`
            is. The full image and the accumulators never leave `x`'s device.
        progress: called with (tiles_done, tiles_total) after each batch of each call.
        conditions: per-image tensors (N, ...) passed to the network a row per tile (the photo's
            camera and finish embedding).
        blend_dtype: the accumulators' dtype; None: float64 (or x's, when wider).
    """

    def __init__(
        self,
        denoise_batch: BatchDenoiser | TileScheduler,
        *,
        tile: int,
        overlap: int,
        tile_batch: int = 1,
        device: torch.device | str | None = None,
        progress: Progress | None = None,
        conditions: Sequence[Tensor] = (),
        blend_dtype: torch.dtype | None = None,
    ) -> None:
        _check_tiling(tile, overlap)
        if isinstance(denoise_batch, TileScheduler):
            self.scheduler = denoise_batch
        else:
            self.scheduler = TileScheduler(denoise_batch, batch=tile_batch, device=device)
        self.tile = tile
        self.overlap = overlap
        self.progress = progress
        self.conditions = tuple(conditions)
        self.blend_dtype = blend_dtype

    @property
    def tile_batch(self) -> int:
        return self.scheduler.batch

    def __call__(self, x: Tensor, sigma: Tensor, cond: Tensor, only_where: Tensor | None = None) -> Tensor:
        """x0 estimate of the whole image. With `only_where` ((N, 1, H, W), true where the caller
        will read the result) the tiles that hold none of those pixels are not evaluated and the
        pixels no evaluated tile covers come back as 0. A pixel the caller reads is covered by all
        of its tiles, so its value is exactly the full computation's in this call. Over several
        calls (a sampler's steps) it is not quite: a pixel an evaluated tile shares with a skipped
        one is blended from fewer tiles, and the next call sees that as context."""
        if x.ndim != 4 or cond.ndim != 4 or x.shape[0] != cond.shape[0] or x.shape[2:] != cond.shape[2:]:
            raise ValueError(
                f"need x (N, C, H, W) and cond (N, Cc, H, W) of one size, got {tuple(x.shape)} "
                f"and {tuple(cond.shape)}"
            )
        n, c, height, width = x.shape
        if only_where is not None and tuple(only_where.shape) != (n, 1, height, width):
            raise ValueError(f"only_where must be (N, 1, H, W) of x's size, got {tuple(only_where.shape)}")
        grid = tile_grid(height, width, self.tile, self.overlap)
        # Tiles of every image, in order; they all have one size, so any run of them can share a
        # batch. `only_where` is read here, once per call: keep it on the CPU, where reading it
        # does not wait for a GPU.
        items = [
            (b, rows, cols)
            for b in range(n)
            for rows, cols in grid
            if only_where is None or bool(only_where[b, :, rows, cols].any())
        ]
        acc_dtype = self.blend_dtype or torch.promote_types(x.dtype, torch.float64)
        num = torch.zeros((n, c, height, width), dtype=acc_dtype, device=x.device)
        den = torch.zeros((n, 1, height, width), dtype=acc_dtype, device=x.device)
        rows0, cols0 = grid[0]
        weight = blend_weights(
            rows0.stop - rows0.start, cols0.stop - cols0.start, self.overlap, dtype=acc_dtype, device=x.device
        )

        done = 0
        if items:
            request = TileRequest(x, sigma, cond, items, self.conditions)
            for indices, pred in self.scheduler.evaluate(request):
                # Note: with the network on a GPU and x on the CPU this copy is a CPU-GPU sync point;
                # with x on the GPU (rawback.inference on CUDA) the blend stays there.
                pred = pred.to(device=x.device, dtype=acc_dtype)
                for k, index in enumerate(indices):
                    b, rows, cols = items[index]
                    num[b, :, rows, cols] += pred[k] * weight
                    den[b, :, rows, cols] += weight
                done += len(indices)
                if self.progress is not None:
                    self.progress(done, len(items))
        # den > 0 wherever a tile was evaluated: the weights are strictly positive. Without
        # `only_where` the grid covers every pixel.
        if only_where is None:
            return (num / den).to(x.dtype)
        return torch.where(den > 0, num / den.clamp(min=torch.finfo(acc_dtype).tiny), 0.0).to(x.dtype)

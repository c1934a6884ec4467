"""Tile grid, blend weights and the tiled denoiser, on a tiny per-pixel float64 model.

A per-pixel model (1x1 convolutions with sigma mixed in) sees no neighbours, so tile borders cannot
change its output: tiled must equal untiled up to the blend's rounding.
"""

from __future__ import annotations

import pytest
import torch

from rawback.sampling import initial_noise, karras_sigmas, sample_euler
from rawback.tiling import TiledDenoiser, blend_weights, tile_grid, tile_starts

C, CC = 4, 3  # packed RGGB channels, conditioning channels


class PixelModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(8, C + CC, generator=generator, dtype=torch.float64)
        self.w2 = torch.randn(C, 8, generator=generator, dtype=torch.float64) / 4
        self.calls: list[int] = []  # batch size of each call

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        h = torch.tanh(_mix(self.w1, torch.cat([x, cond], dim=1)) + torch.log(sigma))
        return x / (1 + sigma**2) + _mix(self.w2, h)


def _mix(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # A 1x1 convolution written as elementwise products summed in a fixed order, so the result is
    # bit-identical whatever the batch size (a matmul may change its reduction order with shape).
    out = weight[None, :, 0, None, None] * x[:, 0:1]
    for c in range(1, x.shape[1]):
        out = out + weight[None, :, c, None, None] * x[:, c : c + 1]
    return out


def inputs(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return initial_noise((1, C, height, width), seed), initial_noise((1, CC, height, width), seed + 1)


SIGMA = torch.tensor(0.7, dtype=torch.float64)


# --- grid and weights -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(53, 16, 4), (37, 16, 0), (16, 16, 4), (5, 16, 4), (17, 8, 7)]
)
def test_tile_starts_cover_and_stay_inside(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0
    assert starts == sorted(starts)
    assert starts[-1] + size == length  # snapped to the edge, nothing dropped
    assert all(s >= 0 and s + size <= length for s in starts)
    covered = torch.zeros(length, dtype=torch.bool)
    for s in starts:
        covered[s : s + size] = True
    assert bool(covered.all())


def test_tile_starts_example():
    assert tile_starts(10, 4, 1) == [0, 3, 6]
    assert tile_starts(3, 4, 1) == [0]


@pytest.mark.parametrize(("tile", "overlap"), [(8, 8), (8, 9), (8, -1)])
def test_tile_starts_rejects_bad_overlap(tile, overlap):
    with pytest.raises(ValueError, match=f"tile={tile}, overlap={overlap}"):
        tile_starts(20, tile, overlap)


@pytest.mark.parametrize(("height", "width"), [(37, 53), (5, 7), (16, 40)])
def test_grid_covers_every_pixel_with_positive_weight(height, width):
    tile, overlap = 16, 4
    total = torch.zeros(height, width, dtype=torch.float64)
    for rows, cols in tile_grid(height, width, tile, overlap):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        assert (h, w) == (min(tile, height), min(tile, width))
        assert rows.stop <= height and cols.stop <= width
        total[rows, cols] += blend_weights(h, w, overlap, dtype=torch.float64)
    assert bool((total > 0).all())


@pytest.mark.parametrize(("h", "w", "overlap"), [(16, 16, 4), (16, 12, 8), (5, 7, 4), (8, 8, 0), (1, 1, 3)])
def test_blend_weights_positive_smooth_and_one_inside(h, w, overlap):
    weights = blend_weights(h, w, overlap, dtype=torch.float64)
    assert weights.shape == (h, w)
    assert bool((weights > 0).all()) and bool((weights <= 1).all())
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(1))
    if h >= 2 * overlap and w >= 2 * overlap:
        assert bool((weights[overlap : h - overlap, overlap : w - overlap] == 1).all())


# --- the tiled denoiser ---------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(37, 53), (5, 7), (12, 9), (16, 16)])
def test_tiled_equals_untiled(height, width):
    model = PixelModel()
    x, cond = inputs(height, width)
    tiled = TiledDenoiser(model, tile=16, overlap=4, tile_batch=4)
    out = tiled(x, SIGMA, cond)
    assert out.shape == x.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, model(x, SIGMA, cond), rtol=0, atol=1e-6)


def test_tile_batch_does_not_change_the_result():
    x, cond = inputs(37, 53)
    models = [PixelModel() for _ in range(3)]
    results = [
        TiledDenoiser(model, tile=16, overlap=4, tile_batch=b, device="cpu")(x, SIGMA, cond)
        for model, b in zip(models, (1, 3, 100), strict=True)
    ]
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    tiles = len(tile_grid(37, 53, 16, 4))
    assert models[0].calls == [1] * tiles
    assert max(models[1].calls) == 3 and sum(models[1].calls) == tiles
    assert models[2].calls == [tiles]


def test_out_of_memory_shrinks_the_batch_and_retries():
    model = PixelModel()

    def small_memory(x_tiles, sigma, cond_tiles):
        if x_tiles.shape[0] > 2:
            raise torch.OutOfMemoryError("too many tiles")
        return model(x_tiles, sigma, cond_tiles)

    x, cond = inputs(37, 53)
    done = []
    tiled = TiledDenoiser(
        small_memory, tile=16, overlap=4, tile_batch=8, progress=lambda d, t: done.append((d, t))
    )
    out = tiled(x, SIGMA, cond)
    assert tiled.tile_batch == 2
    torch.testing.assert_close(out, model(x, SIGMA, cond), rtol=0, atol=1e-6)
    assert done[-1] == (len(tile_grid(37, 53, 16, 4)),) * 2
    assert torch.equal(tiled(x, SIGMA, cond), out)  # the reduced size is kept


def test_other_errors_propagate():
    def broken(x_tiles, sigma, cond_tiles):
        raise RuntimeError("not memory")

    x, cond = inputs(20, 20)
    with pytest.raises(RuntimeError, match="not memory"):
        TiledDenoiser(broken, tile=16, overlap=4, tile_batch=4)(x, SIGMA, cond)


def test_out_of_memory_with_one_tile_is_raised():
    def hopeless(x_tiles, sigma, cond_tiles):
        raise torch.OutOfMemoryError("no memory at all")

    x, cond = inputs(20, 20)
    tiled = TiledDenoiser(hopeless, tile=16, overlap=4, tile_batch=4)
    with pytest.raises(torch.OutOfMemoryError):
        tiled(x, SIGMA, cond)
    assert tiled.tile_batch == 1


def test_euler_through_tiles_equals_untiled():
    model = PixelModel()
    sigmas = karras_sigmas(4, 0.002, 80.0)
    _, cond = inputs(21, 30)
    x = initial_noise((1, C, 21, 30), seed=5) * sigmas[0]
    tiled = TiledDenoiser(model, tile=8, overlap=2, tile_batch=5)
    out_tiled = sample_euler(lambda x, s: tiled(x, s, cond), x, sigmas)
    out_plain = sample_euler(lambda x, s: model(x, s, cond), x, sigmas)
    torch.testing.assert_close(out_tiled, out_plain, rtol=0, atol=1e-6)

"""Tile grid, blend weights and the tiled denoiser, on a tiny per-pixel float64 model.

A per-pixel model (1x1 convolutions with sigma mixed in) sees no neighbours, so tile borders cannot
change its output: tiled must equal untiled up to the blend's rounding.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rawback.sampling import initial_noise, karras_sigmas, sample_euler
from rawback.tiling import TiledDenoiser, axis_tiles, blend_weights, tile_grid

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
        sigma = sigma.reshape(-1, 1, 1, 1)  # 0-d called whole, one per tile through the tiles
        h = torch.tanh(_mix(self.w1, torch.cat([x, cond], dim=1)) + torch.log(sigma))
        return x / (1 + sigma**2) + _mix(self.w2, h)


def memory_for(model: PixelModel, tiles: int):
    """`model` on a device whose memory holds `tiles` tiles: a larger call runs out of it."""

    def small_memory(x_tiles: torch.Tensor, sigma: torch.Tensor, cond_tiles: torch.Tensor) -> torch.Tensor:
        if x_tiles.shape[0] > tiles:
            raise torch.OutOfMemoryError("too many tiles")
        return model(x_tiles, sigma, cond_tiles)

    return small_memory


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
    ("length", "tile", "overlap"),
    [(53, 16, 4), (37, 16, 0), (16, 16, 4), (5, 16, 4), (17, 8, 7), (2000, 160, 32), (240, 160, 32)],
)
def test_axis_tiles_cover_overlap_and_stay_inside(length, tile, overlap):
    size, starts = axis_tiles(length, tile, overlap)
    assert size <= min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length  # from the first pixel to the last
    assert starts == sorted(set(starts))
    if len(starts) > 1:  # neighbours share at least `overlap` pixels
        assert all(size - (b - a) >= overlap for a, b in itertools.pairwise(starts))
    # The fewest tiles of at most `tile` pixels that can do it, and no larger than they need be.
    assert len(starts) == max(1, math.ceil((length - overlap) / (tile - overlap)))
    assert len(starts) == 1 or len(starts) * (size - 1) - (len(starts) - 1) * overlap < length


def test_axis_tiles_examples():
    assert axis_tiles(10, 4, 1) == (4, [0, 3, 6])
    assert axis_tiles(3, 4, 1) == (3, [0])
    # A 640x480 photo's packed 320x240 at the CPU default (160, overlap 32): 3 x 2 tiles of
    # 128 x 136, not 160 x 160 with the last ones mostly repeating their neighbours.
    assert axis_tiles(320, 160, 32) == (128, [0, 96, 192])
    assert axis_tiles(240, 160, 32) == (136, [0, 104])


@pytest.mark.parametrize(("tile", "overlap"), [(8, 8), (8, 9), (8, -1)])
def test_axis_tiles_rejects_bad_overlap(tile, overlap):
    with pytest.raises(ValueError, match=f"tile={tile}, overlap={overlap}"):
        axis_tiles(20, tile, overlap)


@pytest.mark.parametrize(("height", "width"), [(37, 53), (5, 7), (16, 40)])
def test_grid_covers_every_pixel_with_positive_weight(height, width):
    tile, overlap = 16, 4
    total = torch.zeros(height, width, dtype=torch.float64)
    for rows, cols in tile_grid(height, width, tile, overlap):
        h, w = rows.stop - rows.start, cols.stop - cols.start
        assert (h, w) == (axis_tiles(height, tile, overlap)[0], axis_tiles(width, tile, overlap)[0])
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
    x, cond = inputs(37, 53)
    done = []
    tiled = TiledDenoiser(
        memory_for(model, 2), tile=16, overlap=4, tile_batch=8, progress=lambda d, t: done.append((d, t))
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


def test_only_where_runs_just_the_tiles_holding_those_pixels_and_matches_there():
    model = PixelModel()
    x, cond = inputs(37, 53)
    wanted = torch.zeros(1, 1, 37, 53, dtype=torch.bool)
    wanted[0, 0, 2:5, 3:6] = True  # top-left corner: in the first tile only
    wanted[0, 0, 20, 30] = True  # one pixel in the middle, inside several overlapping tiles
    grid = tile_grid(37, 53, 16, 4)
    holding = [t for t in grid if bool(wanted[0, 0][t].any())]
    assert 1 < len(holding) < len(grid)
    out = TiledDenoiser(model, tile=16, overlap=4, tile_batch=1)(x, SIGMA, cond, only_where=wanted)
    assert sum(model.calls) == len(holding)
    full = TiledDenoiser(PixelModel(), tile=16, overlap=4, tile_batch=1)(x, SIGMA, cond)
    assert torch.equal(out[wanted.expand_as(out)], full[wanted.expand_as(full)])
    covered = torch.zeros(37, 53, dtype=torch.bool)
    for rows, cols in holding:
        covered[rows, cols] = True
    assert out[0][:, ~covered].eq(0).all() and out[0][:, covered].ne(0).all()


def test_only_where_must_have_the_image_size():
    x, cond = inputs(20, 20)
    with pytest.raises(ValueError, match="only_where"):
        TiledDenoiser(PixelModel(), tile=16, overlap=4, tile_batch=4)(
            x, SIGMA, cond, only_where=torch.ones(1, 1, 20, 19, dtype=torch.bool)
        )

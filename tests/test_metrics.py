"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from rawback import metrics


def test_psnr_known_value_and_cap() -> None:
    a = np.zeros((4, 4, 4))
    b = np.full((4, 4, 4), 0.1)
    assert metrics.psnr(a, b) == pytest.approx(20.0)
    assert metrics.psnr(a, a) == metrics.PSNR_CAP_DB
    assert metrics.psnr(np.zeros(3), np.full(3, 25.5), peak=255.0) == pytest.approx(20.0)


def test_three_channel_averages_greens() -> None:
    packed = np.array([[[0.1, 0.2, 0.4, 0.8]]])
    assert np.allclose(metrics.three_channel(packed), [[[0.1, 0.3, 0.8]]])


def test_ssim_identity_and_degradation() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 64, 3))
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(x, np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1)) < 0.7


def test_wb_oracle_removes_per_channel_gains_only() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random((32, 32, 4)) * 0.5
    tinted = truth * np.array([0.5, 1.0, 1.0, 1.6])
    assert metrics.psnr(tinted, truth) < 25
    assert metrics.wb_oracle_psnr(tinted, truth) == metrics.PSNR_CAP_DB
    noisy = truth + rng.normal(0, 0.01, truth.shape)
    assert metrics.wb_oracle_psnr(noisy, truth) == pytest.approx(metrics.psnr(noisy, truth), abs=0.2)


def test_overexposed_mask_blocks_and_dilation() -> None:
    rgb = np.zeros((20, 20, 3), dtype=np.uint8)
    rgb[10, 10, 1] = 250  # one hot pixel -> packed (5, 5)
    mask = metrics.overexposed_mask(rgb, dilation=2)
    assert mask.shape == (10, 10)
    assert mask[5, 5] and mask[3, 3] and mask[7, 7] and not mask[2, 5] and not mask[8, 5]
    assert metrics.masked_psnr(np.zeros((10, 10, 4)), np.zeros((10, 10, 4)), np.zeros((10, 10), bool)) is None


def test_grid_patches_cover_three_by_three() -> None:
    patches = metrics.grid_patches(1000, 1500)
    assert len(patches) == 9
    assert all((r.stop - r.start) % 32 == 0 and (c.stop - c.start) % 32 == 0 for r, c in patches)
    assert patches[-1][0].stop <= 1000 and patches[-1][1].stop <= 1500


def test_bilinear_demosaic_of_flat_field_is_flat() -> None:
    mosaic = np.tile(np.array([[0.2, 0.5], [0.5, 0.8]]), (8, 8))
    rgb = metrics.bilinear_demosaic(mosaic, "RGGB")
    inner = rgb[2:-2, 2:-2]
    assert np.allclose(inner[..., 0], 0.2) and np.allclose(inner[..., 1], 0.5)
    assert np.allclose(inner[..., 2], 0.8)


def test_illuminant_error() -> None:
    assert metrics.illuminant_error_degrees(
        np.array([0.5, 1, 0.7]), np.array([0.5, 1, 0.7])
    ) == pytest.approx(0)
    assert metrics.illuminant_error_degrees(np.array([0.5, 1, 0.7]), np.array([0.7, 1, 0.5])) > 10

"""Transfer curves, camera matrices and Bayer geometry."""

from __future__ import annotations

import numpy as np
import pytest

from rawback.isp import bayer, color


@pytest.mark.parametrize("curve", sorted(color.TRANSFER_CURVES))
def test_transfer_curves_invert(curve: str) -> None:
    v = np.linspace(0, 1, 1001, dtype=np.float32)
    assert np.allclose(color.from_linear(color.to_linear(v, curve), curve), v, atol=2e-6)


def test_bt709_toe_matches_dcraw() -> None:
    # dcraw's gamma_curve(0.45, 4.5) toe: g[2] (linear break), g[3] (encoded break), g[4] (offset)
    toe = (color._BT709_X, color._BT709_Y, color._BT709_A)
    assert toe == pytest.approx((0.018054, 0.081243, 0.099297), abs=1e-6)


def test_srgb_curve_known_values() -> None:
    assert color.srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)
    assert color.linear_to_srgb(np.float32(0.18)) == pytest.approx(0.46135, abs=1e-5)


def test_unknown_curve_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown transfer curve"):
        color.to_linear(np.zeros(3), "rec2020")


def test_srgb_as_camera_is_neutral() -> None:
    # A "camera" whose RGB is linear sRGB sees D65 white as (1, 1, 1) and needs no matrix.
    assert np.allclose(color.daylight_neutral(color.SRGB_FROM_XYZ), 1.0)
    assert np.allclose(color.srgb_from_camera_balanced(color.SRGB_FROM_XYZ), np.eye(3), atol=1e-9)


def test_balanced_white_stays_white() -> None:
    matrix = np.array([0.8606, -0.2573, -0.0949, -0.8237, 1.5489, 0.2974, -0.2649, 0.3076, 0.91])
    rgb_cam = color.srgb_from_camera_balanced(matrix)
    assert np.allclose(rgb_cam @ np.ones(3), 1.0)


def test_neutral_angle() -> None:
    assert color.neutral_angle_degrees(np.array([1, 1, 1]), np.array([2, 2, 2])) == pytest.approx(0)
    assert color.neutral_angle_degrees(np.array([1, 0, 0]), np.array([0, 1, 0])) == pytest.approx(90)


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
@pytest.mark.parametrize("shape", [(8, 10), (9, 11), (2, 2)])
def test_pack_and_place_round_trip(pattern: str, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.random((*shape, 3)).astype(np.float32)
    mosaic = bayer.mosaic_rgb(rgb, pattern)
    packed = bayer.pack_rggb(mosaic, pattern)
    # Packed planes hold the right colours: R plane from red sites, B from blue sites.
    rows, cols = bayer.rggb_crop(*shape, pattern)
    region = rgb[rows, cols]
    assert np.array_equal(packed[..., 0], region[0::2, 0::2, 0])
    assert np.array_equal(packed[..., 3], region[1::2, 1::2, 2])
    if packed.size == 0:
        return
    placed = bayer.packed_to_pattern(packed, pattern, *shape)
    assert placed.shape == shape
    assert np.array_equal(placed[rows, cols], mosaic[rows, cols])
    # Edge sites outside the packed region are filled with a value of the right colour.
    sites = bayer.channel_index(pattern)
    for y in range(shape[0]):
        for x in range(shape[1]):
            assert np.isin(placed[y, x], rgb[..., sites[y % 2, x % 2]])


def test_pattern_codes_and_offsets() -> None:
    assert bayer.pattern_codes("RGGB") == (0, 1, 1, 2)
    assert bayer.pattern_codes("GRBG") == (1, 0, 2, 1)
    assert bayer.rggb_offset("RGGB") == (0, 0)
    assert bayer.rggb_offset("GRBG") == (0, 1)
    assert bayer.rggb_offset("GBRG") == (1, 0)
    assert bayer.rggb_offset("BGGR") == (1, 1)
    assert bayer.pattern_from_codes([[0, 1], [3, 2]], "RGBG") == "RGGB"
    with pytest.raises(ValueError, match="unsupported CFA pattern"):
        bayer.check_pattern("RGBW")

"""The "finished" evaluation protocol, LibRaw's linear demosaic it starts from, and the exposure
error metric."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from rawback.evaluate.protocols import FinishedProtocol, RawbackProtocol, get_protocol
from rawback.evaluate.run import BASELINE, ORACLE, EvalOptions, run_eval
from rawback.io.raw import read_linear_rgb, read_raw
from rawback.isp import bayer
from rawback.isp.unprocess import to_counts, white_balance_scale
from rawback.metrics import exposure_error_stops
from tests.conftest import colour_profile

S40 = colour_profile("canon-powershot-s40")
NEUTRAL = np.array([0.5, 1.0, 0.8])


def write_dng_scene(path: Path) -> None:
    """A small smooth scene as a DNG with an as-shot neutral, made by the test."""
    from rawback.io.dng import write_dng

    h, w = 96, 128
    y, x = np.mgrid[0:h, 0:w] / w
    srgb = np.stack([0.1 + 0.4 * x, 0.2 + 0.3 * y, 0.15 + 0.2 * x * y], -1)
    raw_rgb = np.clip(srgb @ np.linalg.inv(S40.srgb_from_camera()).T / white_balance_scale(NEUTRAL), 0, 1)
    counts = to_counts(bayer.mosaic_rgb(raw_rgb, S40.cfa_pattern).astype(np.float32), S40)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, counts, sensor=S40.dng_sensor(), as_shot_neutral=NEUTRAL)


def test_finished_is_registered() -> None:
    protocol = get_protocol("finished")
    assert isinstance(protocol, FinishedProtocol)
    assert protocol.transfer == "srgb" and not protocol.round_trip


def test_linear_render_is_the_mosaic_at_its_sites(tmp_path: Path) -> None:
    path = tmp_path / "scene.dng"
    write_dng_scene(path)
    linear = read_linear_rgb(path)
    raw = read_raw(path)
    assert linear.rgb.shape == (*raw.mosaic.shape, 3) and linear.rgb.dtype == np.float32
    assert linear.pattern == raw.pattern and not linear.resampled
    sites = bayer.channel_index(raw.pattern)
    rows, cols = np.indices(raw.mosaic.shape)
    at_sites = linear.rgb[rows, cols, sites[rows % 2, cols % 2]]
    assert np.abs(at_sites - raw.normalized()).max() < 2 / 65535


def test_linear_render_refuses_a_non_raw(tmp_path: Path) -> None:
    from rawback.errors import InputError

    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"II*\x00 not really a dng")
    with pytest.raises(InputError, match="LibRaw"):
        read_linear_rgb(bad)


def test_finish_keeps_grey_grey_and_black_black() -> None:
    ramp = np.linspace(0.0, 1.0, 32, dtype=np.float32)
    camera_rgb = ramp[None, :, None] * NEUTRAL[None, None, :] * np.ones((16, 1, 1), np.float32)
    out = FinishedProtocol().finish(camera_rgb, S40, NEUTRAL)
    middle = out[8].astype(int)  # away from the sharpening's image border
    assert middle[0].max() <= 1 and middle[-1].min() >= 254
    assert (middle.max(axis=-1) - middle.min(axis=-1)).max() <= 1
    assert np.all(np.diff(middle[:, 1]) >= 0)


def test_eval_with_the_finished_protocol(tmp_path: Path) -> None:
    write_dng_scene(tmp_path / "raws" / "scene.dng")
    report = run_eval(EvalOptions(data=tmp_path / "raws", protocol="finished"))
    assert not report.failed, [img.error for img in report.failed]
    means = report.means()
    assert means[BASELINE]["psnr_roundtrip_srgb"] is None
    assert math.isfinite(means[BASELINE]["psnr_packed"])
    # The oracle row is given the white balance LibRaw applied: the DNG's as-shot neutral.
    assert means[ORACLE]["illuminant_error_deg"] < 0.1


@pytest.mark.shared_data
def test_finished_input_from_a_real_raw(shared_raw: Path, tmp_path: Path) -> None:
    raw = read_raw(shared_raw / "kodak_dc50" / "DC0008L.KDC")
    (tmp_path / "finished").mkdir()
    (tmp_path / "rawback").mkdir()
    prepared = get_protocol("finished").make_input(raw, tmp_path / "finished")
    assert prepared.path.is_file() and prepared.path.suffix == ".jpg"
    assert prepared.input_rgb8.shape == (*raw.mosaic.shape, 3)
    with Image.open(prepared.path) as jpeg:
        assert JpegImagePlugin.get_sampling(jpeg) == 2  # 4:2:0
        assert jpeg.getexif().get(271) == raw.make  # EXIF Make copied
        reference = io.BytesIO()
        Image.new("RGB", (16, 16)).save(reference, "JPEG", quality=85)
        assert jpeg.quantization == Image.open(reference).quantization  # quality 85
    plain = RawbackProtocol().make_input(raw, tmp_path / "rawback")
    assert prepared.input_rgb8.mean() > plain.input_rgb8.mean() + 10
    assert np.allclose(prepared.neutral, plain.neutral)


def test_exposure_error_in_stops() -> None:
    target = np.random.default_rng(0).uniform(0.05, 0.45, (8, 8, 4))
    assert exposure_error_stops(2 * target, target) == pytest.approx(1.0)
    assert exposure_error_stops(target / 2, target) == pytest.approx(-1.0)
    assert exposure_error_stops(target, target) == pytest.approx(0.0)
    # Clipped pixels are ignored: a brighter prediction that clips still reads as +1 stop.
    bright = target.copy()
    bright[:2] = 0.9
    assert exposure_error_stops(np.clip(2 * bright, 0, 1), bright) == pytest.approx(1.0)
    assert math.isnan(exposure_error_stops(np.ones((4, 4, 4)), np.ones((4, 4, 4))))

"""`rawback eval`: protocols, rows and metrics, on self-made RAWs and on ../shared/data; step sweeps
and row labels of the learned method with a tiny model."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rawback import camera, inverse, methods
from rawback.choices import TILING
from rawback.device import uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import UsageError
from rawback.evaluate import report as eval_report
from rawback.evaluate.report import to_json
from rawback.evaluate.run import (
    BASELINE,
    ORACLE,
    SAME_WHITE,
    EvalOptions,
    diffusion_label,
    parse_steps,
    run_eval,
)
from rawback.isp import bayer
from rawback.isp.unprocess import to_counts, white_balance_scale
from tests.conftest import colour_profile

S40 = colour_profile("canon-powershot-s40")


def write_fake_raw(path: Path, neutral: np.ndarray, seed: int = 0, highlight: bool = False) -> None:
    """A 'camera RAW' made by the test: a DNG of a smooth scene, optionally with a clipped highlight."""
    from rawback.io.dng import write_dng

    rng = np.random.default_rng(seed)
    h, w = 192, 256
    y, x = np.mgrid[0:h, 0:w] / w
    srgb_linear = np.stack([0.1 + 0.4 * x, 0.2 + 0.3 * y, 0.15 + 0.2 * x * y], -1) * rng.uniform(0.8, 1.2, 3)
    balanced = srgb_linear @ np.linalg.inv(S40.srgb_from_camera()).T
    raw_rgb = np.clip(balanced / white_balance_scale(neutral), 0, 1)
    if highlight:
        raw_rgb[20:60, 30:90] = 1.0
    counts = to_counts(bayer.mosaic_rgb(raw_rgb, S40.cfa_pattern).astype(np.float32), S40)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, counts, sensor=S40.dng_sensor(), as_shot_neutral=neutral)


@pytest.fixture()
def fake_data(tmp_path: Path) -> Path:
    data = tmp_path / "raws"
    write_fake_raw(data / "a" / "one.dng", np.array([0.5, 1.0, 0.8]))
    write_fake_raw(data / "b" / "two.dng", np.array([0.35, 1.0, 1.1]), seed=1, highlight=True)
    (data / "notes.txt").write_text("not a raw file")
    return data


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def test_eval_on_self_made_raws(fake_data: Path) -> None:
    report = run_eval(EvalOptions(data=fake_data))
    assert [img.file for img in report.images] == ["a/one.dng", "b/two.dng"]
    assert report.rows == [BASELINE, ORACLE]
    means = report.means()
    for key in (
        "psnr_packed",
        "psnr_3ch",
        "ssim_3ch",
        "psnr_wb_oracle",
        "psnr_overexposed",
        "psnr_roundtrip_srgb",
        "illuminant_error_deg",
        "seconds_per_mp",
    ):
        assert finite(means[BASELINE][key]) and finite(means[ORACLE][key]), key
    one, two = (img.rows for img in report.images)
    # Given the true white balance the analytic inverse of a LibRaw render is nearly exact...
    assert one[ORACLE]["psnr_packed"] > 40
    assert one[ORACLE]["illuminant_error_deg"] < 0.1
    # ...and without it the error is the illuminant: a daylight guess is off by degrees.
    assert one[BASELINE]["psnr_packed"] < one[ORACLE]["psnr_packed"] - 3
    assert one[BASELINE]["illuminant_error_deg"] > 1
    assert one[BASELINE]["psnr_wb_oracle"] > 40
    # The round trip reproduces the input photo.
    assert one[BASELINE]["psnr_roundtrip_srgb"] > 35
    # Clipped highlights are where the analytic inverse fails, even with the right white balance.
    assert one[ORACLE]["psnr_overexposed"] is None
    assert two[ORACLE]["psnr_overexposed"] < two[ORACLE]["psnr_packed"] < one[ORACLE]["psnr_packed"]


def test_method_under_test_never_sees_the_true_white_balance(
    fake_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[np.ndarray | None] = []

    def spy(request: inverse.InverseRequest) -> inverse.InverseResult:
        seen.append(request.neutral)
        return methods.analytic(request)

    monkeypatch.setitem(methods.METHODS, "spy", spy)
    report = run_eval(EvalOptions(data=fake_data, method="spy", include=("a/*",)))
    assert report.rows == ["spy", BASELINE, ORACLE]
    assert seen == [None]


def test_reports_are_written(fake_data: Path, tmp_path: Path) -> None:
    report = run_eval(EvalOptions(data=fake_data, limit=1))
    json_path, md_path = eval_report.write_reports(report, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["protocol"] == "rawback" and data["rows"] == [BASELINE, ORACLE]
    assert data["images"][0]["scores"][ORACLE]["psnr_packed"] > 40
    text = md_path.read_text()
    assert "| row |" in text and ORACLE in text and "one.dng" in text
    assert len(eval_report.rich_tables(report)) == 2


def test_bad_file_is_reported_and_the_run_goes_on(fake_data: Path) -> None:
    (fake_data / "broken.dng").write_bytes(b"II*\x00 not really a dng")
    report = run_eval(EvalOptions(data=fake_data))
    assert len(report.images) == 3
    assert [img.file for img in report.failed] == ["broken.dng"]
    # The row names the file; its error says what is wrong, once (issue 21: the CLI line
    # "broken.dng: /path/broken.dng: ..." named it twice).
    assert report.failed[0].error and "broken.dng" not in report.failed[0].error
    assert "\n" not in report.failed[0].error
    assert finite(report.means()[BASELINE]["psnr_packed"])


@pytest.mark.parametrize("protocol", ["raw-diffusion", "invertible-isp"])
def test_published_protocols_give_their_own_scores(fake_data: Path, protocol: str) -> None:
    report = run_eval(EvalOptions(data=fake_data, protocol=protocol, limit=1))
    means = report.means()
    assert finite(means[BASELINE]["protocol_psnr"])
    assert means[BASELINE]["psnr_roundtrip_srgb"] is None  # defined for round-trip protocols only
    if protocol == "raw-diffusion":
        assert 0 < means[BASELINE]["protocol_ssim"] <= 1


def test_pairs_replace_the_render(fake_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    from rawback.io.raw import CAMERA_WB_RENDER, render_raw

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    render = render_raw(fake_data / "a" / "one.dng", **CAMERA_WB_RENDER)
    Image.fromarray(render.rgb).save(pairs / "one.jpg", quality=95)
    report = run_eval(EvalOptions(data=fake_data, pairs=pairs))
    assert report.images[0].error is None
    assert "no paired JPEG" in report.images[1].error


def test_a_damaged_paired_jpeg_is_not_scored(fake_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    from rawback.io.raw import CAMERA_WB_RENDER, render_raw

    pairs = tmp_path / "pairs"
    pairs.mkdir()
    render = render_raw(fake_data / "a" / "one.dng", **CAMERA_WB_RENDER)
    Image.fromarray(render.rgb).save(pairs / "one.jpg", quality=95)
    whole = (pairs / "one.jpg").read_bytes()
    (pairs / "one.jpg").write_bytes(whole[: len(whole) * 2 // 3] + b"\xff\xd9")  # cut short
    report = run_eval(EvalOptions(data=fake_data, pairs=pairs, limit=1))
    error = report.images[0].error or ""
    assert "one.jpg" in error and "the JPEG data is damaged" in error and error.endswith("not scored")


def test_tone_curve_from_matched_undoes_each_files_own_cameras_finish(
    fake_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`matched` scores what `convert` does by default: the fake RAWs are the S40's, whose built-in
    profile carries its camera engine's finish."""
    from rawback.evaluate.report import to_markdown

    def scores(report) -> list[float]:
        return [
            report.means()[row][key]
            for row in (BASELINE, ORACLE)
            for key in ("psnr_packed", "psnr_wb_oracle")
        ]

    options = EvalOptions(data=fake_data, method="analytic", protocol="finished", limit=1)
    matched = run_eval(dataclasses.replace(options, tone_curve_from="matched"))
    assert [img.finish for img in matched.images] == ["canon-powershot-s40"]
    assert scores(matched) == scores(
        run_eval(dataclasses.replace(options, tone_curve_from="canon-powershot-s40"))
    )
    assert "as `convert` does: `canon-powershot-s40`" in to_markdown(matched)
    # A user's profile of the camera, matched first, whose finish is Lightroom's, not the camera
    # engine's: convert would not undo it on the camera's JPEGs, so neither does `matched`.
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "profiles"))
    lightroom = dataclasses.replace(
        camera.builtin_profiles()["canon-powershot-s40"], name="my-lightroom", finish_renderer="Lightroom"
    )
    camera.save_profile(lightroom, camera.user_folder())
    unmatched = run_eval(dataclasses.replace(options, tone_curve_from="matched"))
    assert [img.finish for img in unmatched.images] == [None]
    assert scores(unmatched) == scores(run_eval(options))


def test_eval_camera_override_keeps_the_files_geometry(fake_data: Path) -> None:
    report = run_eval(EvalOptions(data=fake_data, camera="generic", limit=1))
    assert report.images[0].error is None
    assert finite(report.means()[BASELINE]["psnr_packed"])


def test_eval_camera_override_takes_the_colour_not_a_measured_finish(fake_data: Path, tmp_path: Path) -> None:
    """The built-in S40 profile carries its camera's JPEG finish; `--camera` takes only its colour
    (a protocol's render has its own finish; --tone-curve-from is how eval undoes a measured one)."""
    assert camera.builtin_profiles()["canon-powershot-s40"].tone_curve is not None
    colour_only = tmp_path / "s40-colour.json"
    colour_only.write_text(S40.to_json())
    options = EvalOptions(data=fake_data, camera="canon-powershot-s40", limit=1)
    builtin = run_eval(options).means()
    colour = run_eval(dataclasses.replace(options, camera=str(colour_only))).means()
    for row in (BASELINE, ORACLE):
        for key in ("psnr_packed", "psnr_wb_oracle", "exposure_error_stops"):  # not the timing
            assert builtin[row][key] == colour[row][key], (row, key)


# --- the team's real camera files ----------------------------------------------------------------

SUBSET = ("kodak_dc50/DC0010S.KDC", "canon_s40/CRW_0119.CRW")


@pytest.mark.shared_data
@pytest.mark.slow
def test_eval_on_real_raws_gives_finite_metrics_for_every_column(shared_raw: Path) -> None:
    report = run_eval(EvalOptions(data=shared_raw, include=SUBSET))
    assert not report.failed, [img.error for img in report.failed]
    means = report.means()
    for key in eval_report.shown_metrics(report):
        for row in report.rows:
            assert finite(means[row][key]), (row, key)
    assert set(eval_report.shown_metrics(report)) >= {"psnr_overexposed", "psnr_roundtrip_srgb"}
    # The oracle row isolates the illuminant: it can only be better than the daylight guess.
    assert means[ORACLE]["psnr_packed"] >= means[BASELINE]["psnr_packed"]


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["raw-diffusion", "invertible-isp"])
def test_published_protocols_on_a_real_raw(shared_raw: Path, protocol: str) -> None:
    report = run_eval(EvalOptions(data=shared_raw, protocol=protocol, include=("kodak_dc50/DC0010S.KDC",)))
    assert not report.failed, [img.error for img in report.failed]
    assert finite(report.means()[BASELINE]["protocol_psnr"])


def test_tone_curve_from_gives_every_row_the_measured_curve(fake_data: Path, tmp_path: Path) -> None:
    import dataclasses

    from rawback.errors import RawbackError
    from rawback.evaluate.report import to_markdown
    from rawback.isp import tone

    lifted = dataclasses.replace(
        S40, name="lifted", tone_curve=tuple(map(float, tone.exposure_only(16, 2.0)))
    )
    path = tmp_path / "lifted.json"
    path.write_text(lifted.to_json())
    # The "finished" protocol's input is sRGB-encoded, as a measured curve assumes: undoing a 1-stop
    # lift that is not in it halves every value, one stop lower than without the curve.
    options = EvalOptions(data=fake_data, method="analytic", protocol="finished", limit=1)
    plain = run_eval(options)
    measured = run_eval(dataclasses.replace(options, tone_curve_from=str(path)))
    for row in (BASELINE, ORACLE):
        lower = measured.means()[row]["exposure_error_stops"] - plain.means()[row]["exposure_error_stops"]
        assert lower == pytest.approx(-1.0, abs=0.05)
    assert "Every row undoes the tone curve measured in" in to_markdown(measured)
    # The measured saturation comes along with the curve.
    path.write_text(dataclasses.replace(lifted, saturation=1.5).to_json())
    saturated = run_eval(dataclasses.replace(options, tone_curve_from=str(path)))
    assert saturated.means()[BASELINE]["psnr_packed"] != measured.means()[BASELINE]["psnr_packed"]
    path.write_text(S40.to_json())
    with pytest.raises(RawbackError, match="no measured tone curve"):
        run_eval(EvalOptions(data=fake_data, method="analytic", tone_curve_from=str(path)))


def test_save_inputs_keeps_each_protocol_input_beside_its_path(fake_data: Path, tmp_path: Path) -> None:
    from PIL import Image

    inputs = tmp_path / "inputs"
    run_eval(EvalOptions(data=fake_data, method="analytic", protocol="finished", save_inputs=inputs))
    saved = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*"))
    assert saved == ["a", "a/one.jpg", "b", "b/two.jpg"]
    assert Image.open(inputs / "a" / "one.jpg").format == "JPEG"


def test_steps_parse_to_one_count_per_row_in_the_order_given() -> None:
    assert parse_steps("1") == (1,)
    assert parse_steps("8, 2,8,1") == (8, 2, 1)  # a repeat is one row, where it first appeared
    for bad in ("0", "1,x", "", "2,", "-1", "1.5", "1;2"):
        with pytest.raises(UsageError) as refused:
            parse_steps(bad)
        assert str(refused.value) == f"--steps must be positive integers separated by commas, not {bad!r}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--steps", "1,x"], "--steps must be positive integers separated by commas, not '1,x'"),
        (["--steps", "0"], "--steps must be positive integers separated by commas, not '0'"),
        (["--include", "nomatch/*"], "no RAW files found matching --include nomatch/*"),
        (["--camera", "nope", "--method", "analytic"], "unknown camera 'nope'"),
        (["--device", "cuda:3"], "--device cuda:3: "),
    ],
)
def test_eval_refuses_what_would_fail_every_file_once_before_the_first(
    fake_data: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from rawback.cli import app

    reports = tmp_path / "reports"
    args = ["eval", "--data", str(fake_data), "--report-dir", str(reports), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (1, 2), result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not reports.exists()


def test_eval_quiet_prints_errors_only(fake_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rawback.cli import app

    args = [
        "eval",
        "--data",
        str(fake_data),
        "--method",
        "analytic",
        "--report-dir",
        str(tmp_path / "r"),
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "eval-rawback-analytic.json",
        "eval-rawback-analytic.md",
    ]


def test_eval_sweeps_step_counts(raw_folder, tiny_weights, tmp_path) -> None:
    settings = DiffusionSettings(weights=str(tiny_weights), sampler="heun", tile=64, overlap=16, device="cpu")
    report = run_eval(
        EvalOptions(data=raw_folder, method="diffusion", include=("b/*",), diffusion=settings, steps=(1, 2))
    )
    assert report.rows == [
        diffusion_label(DiffusionSettings(sampler="heun", steps=1)),
        "diffusion (heun, 2 steps)",
        "analytic",
        SAME_WHITE,
        "analytic, oracle white balance",
    ]
    (image,) = report.images
    assert image.error is None
    for row in report.rows:
        assert (
            np.isfinite(image.rows[row]["psnr_packed"])
            and image.rows[row]["exposure_error_stops"] is not None
        )
    # The baseline beside the model with the model's own white balance (of its first row): the
    # same illuminant error, so what differs between them is the structure.
    first = report.rows[0]
    assert image.rows[SAME_WHITE]["illuminant_error_deg"] == pytest.approx(
        image.rows[first]["illuminant_error_deg"], abs=1e-9
    )
    # The report records what the run used, not "the device's default" or "auto".
    recorded = to_json(report)["diffusion"]
    assert (recorded["tile"], recorded["tile_batch"]) == (64, TILING["cpu"][1])
    assert recorded["precision"] == ("bf16" if uses_bf16("auto", torch.device("cpu")) else "fp32")
    # ...and enough to reproduce it: the weights by content, the machine, versions, the selection.
    import hashlib

    import rawback

    run = to_json(report)["run"]
    assert run["weights_sha256"] == hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    assert (
        run["device"] == "cpu" and run["torch"] == torch.__version__ and run["rawback"] == rawback.__version__
    )
    assert run["data"] == str(raw_folder.resolve()) and run["include"] == ["b/*"] and run["date"]
    assert "usable cores" in run["machine"]


def test_one_step_sweep_is_one_row(raw_folder) -> None:
    from rawback.evaluate.run import plan_rows

    rows = plan_rows(EvalOptions(data=raw_folder, method="diffusion", steps=(1, 2, 4),
                                 diffusion=DiffusionSettings(sampler="one-step")))  # fmt: skip
    assert [r.label for r in rows] == [
        "diffusion (one-step)",
        "analytic",
        SAME_WHITE,
        "analytic, oracle white balance",
    ]


def test_row_labels_name_every_setting_that_differs_from_the_defaults() -> None:
    assert diffusion_label(DiffusionSettings()) == "diffusion (euler, 1 step)"
    settings = DiffusionSettings(
        sampler="heun", steps=4, ensemble=2, undo_tone_curve=True, undo_exposure=True, residual="full"
    )
    assert diffusion_label(settings) == (
        "diffusion (heun, 4 steps, ensemble 2, tone curve undone, exposure undone, residual full)"
    )
    assert diffusion_label(DiffusionSettings(sampler="one-step", residual="clipped")) == (
        "diffusion (one-step, residual clipped)"
    )

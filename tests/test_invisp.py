"""The Invertible-ISP baseline (issue 20): the flow's exact inverse, the differentiable JPEG against a
real encoder, the `invisp` training kind (steps and resume), `convert --method invisp` with a tiny
weights file, and `eval` with two methods."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.cli import app
from rawback.convert import ConvertOptions, convert_file
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import RawbackError
from rawback.evaluate.report import to_json, write_reports
from rawback.evaluate.run import BASELINE, ORACLE, SAME_WHITE, EvalOptions, diffusion_label, run_eval
from rawback.invisp_inference import invert_photo, linear_to_mosaic
from rawback.invisp_weights import load_flow, save_flow
from rawback.model.diff_jpeg import cubic_round, jpeg_round_trip
from rawback.model.invisp import FlowConfig, InvertibleIsp, parameter_count
from rawback.train.config import TrainConfig
from rawback.train.loop import TrainOptions, train
from tests.helpers import small_jpeg

TINY_FLOW = FlowConfig(blocks=2, width=4, convs=1)


def perturbed(config: FlowConfig, seed: int = 0, dtype: torch.dtype = torch.float32) -> InvertibleIsp:
    """A flow far from its identity start: every weight moved at random."""
    torch.manual_seed(seed)
    model = InvertibleIsp(config).to(dtype)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.add_(torch.randn_like(parameter) * (0.1 if "mix" in name else 0.03))
    return model.eval()


def test_flow_is_exactly_invertible_in_float64() -> None:
    model = perturbed(FlowConfig(), dtype=torch.float64)
    x = torch.rand(2, 3, 48, 64, dtype=torch.float64) * 1.5 - 0.2
    with torch.no_grad():
        y = model(x)
        assert y.shape == x.shape
        assert (y - x).abs().max() > 0.1  # not the identity
        assert (model.inverse(y) - x).abs().max() < 1e-10
        assert (model(model.inverse(x)) - x).abs().max() < 1e-10


def test_a_new_flow_is_the_identity_and_stays_small() -> None:
    model = InvertibleIsp()
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model(x), x, atol=1e-6)
    assert parameter_count(model) < 1_000_000
    with pytest.raises(ValueError, match="even"):
        model(torch.rand(1, 3, 31, 32))


def _textured(seed: int = 0, size: int = 96) -> np.ndarray:
    """A photo-like test image: smooth gradients, edges and a little texture (uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y * x, 0.7 - 0.5 * y], -1)
    image[size // 3 : size // 2, size // 4 : 3 * size // 4] = (0.9, 0.2, 0.1)
    image += rng.normal(0, 0.03, image.shape)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.mark.parametrize("quality", [90, 60])
def test_differentiable_jpeg_is_close_to_a_real_encoder(quality: int) -> None:
    image = _textured()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=2)
    real = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    source = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255.0
    simulated = jpeg_round_trip(source, quality)[0].permute(1, 2, 0).numpy()
    simulated = np.clip(np.rint(simulated * 255), 0, 255)
    # Much closer to Pillow's decoded JPEG than either is to the original: the same losses.
    loss = _psnr8(image, real)
    assert _psnr8(simulated, real) > loss + 5, (_psnr8(simulated, real), loss)
    assert _psnr8(simulated, real) > 38


def test_differentiable_jpeg_passes_gradients() -> None:
    x = (torch.from_numpy(_textured(size=40)).permute(2, 0, 1)[None].double() / 255.0).requires_grad_()
    jpeg_round_trip(x, 75).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    values = torch.tensor([0.0, 0.4, 0.5, 1.7], requires_grad=True)
    rounded = cubic_round(values)
    assert torch.allclose(rounded, torch.tensor([0.0, 0.064, 0.125, 1.973]), atol=1e-3)
    rounded.sum().backward()
    assert torch.allclose(values.grad, 3 * (values - values.round()).detach() ** 2)


def test_tiled_inverse_matches_one_pass_and_odd_sizes_work() -> None:
    model = perturbed(TINY_FLOW)
    rng = np.random.default_rng(0)
    photo = rng.uniform(0, 1, (70, 90, 3)).astype(np.float32)
    whole = invert_photo(model, photo, tile=1024, overlap=0)
    tiled = invert_photo(model, photo, tile=48, overlap=16)
    assert whole.shape == tiled.shape == (70, 90, 3)
    assert np.abs(whole - tiled).mean() < 1e-2 * np.abs(whole).mean()


def test_weights_round_trip_in_half_precision_and_refuse_other_files(tmp_path) -> None:
    model = perturbed(TINY_FLOW)
    path = tmp_path / "flow.pt"
    save_flow(model, path, {"step": 3})
    loaded = load_flow(path)
    assert loaded.config == TINY_FLOW
    assert json.loads(path.with_suffix(".json").read_text())["blocks"] == 2
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(loaded.inverse(x), model.inverse(x), atol=2e-2)
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(RawbackError, match="not a rawback weights file"):
        load_flow(tmp_path / "junk.pt")


def test_invisp_kind_trains_two_steps_and_resumes(raw_folder, cache_dir, tmp_path) -> None:
    config = TrainConfig(
        kind="invisp", steps=2, batch_size=2, patch=32, warmup=1, workers=0, log_every=1,
        checkpoint_every=1, validate_every=1000, val_crop=64,
    )  # fmt: skip
    out = tmp_path / "run"

    def stop_after_first(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir), stop_after_first)
    weights = train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir, resume=True))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(np.isfinite(r["loss_forward"]) and np.isfinite(r["loss_inverse"]) for r in steps)
    flow = load_flow(weights)
    assert isinstance(flow, InvertibleIsp)


def test_invisp_item_is_the_scene_linear_truth(raw_folder, cache_dir) -> None:
    from rawback.isp.unprocess import raw_from_srgb_matrix
    from rawback.metrics import bilinear_demosaic
    from rawback.train.data import PairSettings, TrainingPairs, build_cache
    from rawback.train.invisp_kind import item

    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    pairs = TrainingPairs(folders, PairSettings(patch=32), seed=0)
    got = item(pairs, 3)
    assert got["photo"].shape == got["linear"].shape == (3, 32, 32)
    draw = pairs.draw(3)
    # The inverse's colour step takes the item's linear image back to the true camera RGB.
    camera = (
        got["linear"].permute(1, 2, 0).numpy() @ raw_from_srgb_matrix(draw.item.profile, draw.sim.neutral).T
    )
    assert np.allclose(camera, bilinear_demosaic(draw.truth, "RGGB"), atol=1e-4)
    # ...and inference's last step gives the truth mosaic back from it exactly.
    matrix = raw_from_srgb_matrix(draw.item.profile, draw.sim.neutral)
    mosaic = linear_to_mosaic(got["linear"].permute(1, 2, 0).numpy(), matrix, "RGGB")
    assert np.allclose(mosaic, np.clip(draw.truth, 0, 1), atol=1e-4)


def test_convert_with_invisp_writes_a_dng(tmp_path) -> None:
    weights = tmp_path / "flow.pt"
    save_flow(perturbed(TINY_FLOW), weights)
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(101, 75))
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(jpeg),
            "--method",
            "invisp",
            "--weights",
            str(weights),
            "-o",
            str(tmp_path / "a.dng"),
        ],
    )
    assert result.exit_code == 0, result.output
    with rawpy.imread(str(tmp_path / "a.dng")) as raw:
        assert raw.raw_image_visible.shape == (75, 101)
    # A diffusion weights file is refused in one line.
    options = ConvertOptions(method="invisp", diffusion=DiffusionSettings(weights=str(jpeg)))
    with pytest.raises(RawbackError, match="not a rawback weights file"):
        convert_file(jpeg, tmp_path / "b.dng", options)


def test_eval_with_two_methods_gives_a_row_each(raw_folder, tiny_weights, tmp_path, monkeypatch) -> None:
    from rawback import invisp_inference, invisp_weights

    flow = tmp_path / "flow.pt"
    save_flow(perturbed(TINY_FLOW), flow)
    # Beside diffusion (whose weights --weights names) invisp takes the bundled flow: this one.
    monkeypatch.setattr(invisp_weights, "bundled_invisp", lambda: flow)
    monkeypatch.setattr(invisp_inference, "bundled_invisp", lambda: flow)
    diffusion = DiffusionSettings(weights=str(tiny_weights), tile=64, overlap=16, device="cpu")
    options = EvalOptions(
        data=raw_folder, method="diffusion", methods=("diffusion", "invisp"), include=("b/*",),
        diffusion=diffusion,
    )  # fmt: skip
    report = run_eval(options)
    assert report.rows == [diffusion_label(diffusion), "invisp", BASELINE, SAME_WHITE, ORACLE]
    (image,) = report.images
    assert image.error is None
    assert image.rows["invisp"]["psnr_packed"] != image.rows[report.rows[0]]["psnr_packed"]
    assert all(np.isfinite(image.rows[row]["psnr_packed"]) for row in report.rows)
    recorded = to_json(report)
    assert recorded["methods"] == ["diffusion", "invisp"] and recorded["method"] == "diffusion"
    assert recorded["run"]["invisp_weights"] == str(flow.resolve())
    assert recorded["run"]["weights"] == str(tiny_weights.resolve())
    json_path, md_path = write_reports(report, tmp_path / "reports")
    assert json_path.name == "eval-rawback-diffusion+invisp.json"
    assert "| invisp |" in md_path.read_text()


def test_eval_cli_refuses_one_weights_file_for_two_learned_methods(raw_folder, tiny_weights) -> None:
    args = ["eval", "--data", str(raw_folder), "--method", "diffusion", "--method", "invisp",
            "--weights", str(tiny_weights)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "one learned --method" in result.output

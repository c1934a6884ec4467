"""The learned inverter end to end on data the tests make themselves: synthetic DNGs written with
our own writer stand in for a RAW folder; a tiny model trains for a few steps."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.camera import builtin_profiles
from rawback.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, TILING
from rawback.cli import app
from rawback.convert import ConvertOptions, convert_file
from rawback.device import uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import RawbackError, UsageError
from rawback.evaluate.report import to_json
from rawback.evaluate.run import EvalOptions, diffusion_label, run_eval
from rawback.io.dng import write_dng
from rawback.isp.bayer import mosaic_rgb
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel, area_resize
from rawback.model.weights import BUNDLED, load_weights, save_weights
from rawback.train.config import TrainConfig
from rawback.train.data import (
    SYMMETRIES,
    THUMB_SOURCE,
    PairSettings,
    TrainingPairs,
    bayer_augment,
    build_cache,
)
from rawback.train.loop import TrainingStep, TrainOptions, train

TINY_TRAIN = dict(
    model="tiny", steps=6, batch_size=2, patch=32, warmup=2, workers=0, log_every=1, checkpoint_every=3,
    validate_every=1000, val_crop=64,
)  # fmt: skip


def synthetic_scene(height: int, width: int, seed: int) -> np.ndarray:
    """Linear camera RGB with gradients, flat patches and a clipped highlight."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rgb = np.stack([0.2 + 0.3 * x, 0.15 + 0.2 * y, 0.1 + 0.25 * (1 - x)], axis=-1)
    for _ in range(6):
        top, left = rng.integers(0, height - 24), rng.integers(0, width - 24)
        rgb[top : top + 24, left : left + 24] = rng.uniform(0.02, 0.6, 3)
    rgb[8:20, 8:20] = 1.2  # clipped
    return rgb


def write_synthetic_dng(
    path: Path, seed: int, height: int = 144, width: int = 176, compression: str = "ljpeg"
) -> None:
    profile = builtin_profiles()["generic"]
    normalised = np.clip(mosaic_rgb(synthetic_scene(height, width, seed), profile.cfa_pattern), 0, 1)
    counts = profile.black_level[0] + normalised * (profile.white_level - profile.black_level[0])
    neutral = profile.daylight_neutral() * np.array([1.2, 1.0, 0.8])
    write_dng(
        path,
        np.rint(counts).astype(np.uint16),
        profile=profile,
        as_shot_neutral=neutral / neutral[1],
        compression=compression,
        overwrite=True,
    )


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raws")
    for index, name in enumerate(("a/one.dng", "a/two.dng", "b/three.dng")):
        (root / name).parent.mkdir(exist_ok=True)
        write_synthetic_dng(root / name, seed=index)
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_weights(RawbackModel(preset("tiny")), path)
    return path


def small_jpeg(path: Path, seed: int, size: tuple[int, int] = (120, 90)) -> Path:
    rng = np.random.default_rng(seed)
    image = np.clip(
        synthetic_scene(size[1], size[0], seed) ** (1 / 2.2) + rng.normal(0, 0.02, (size[1], size[0], 3)),
        0,
        1,
    )
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(path, quality=90)
    return path


# --- data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("symmetry", SYMMETRIES)
def test_bayer_augment_keeps_the_rggb_phase(symmetry) -> None:
    codes = np.tile(np.array([[0, 1], [3, 2]]), (9, 9))  # R=0 G1=1 B=2 G2=3, an 18x18 RGGB mosaic
    (out,) = bayer_augment([codes], 16, symmetry)
    assert out.shape == (16, 16)
    # Red and blue stay on their sites; the two greens may trade places (transposes), never R/B.
    assert np.all(out[0::2, 0::2] == 0) and np.all(out[1::2, 1::2] == 2)
    assert set(np.unique(out[0::2, 1::2])) | set(np.unique(out[1::2, 0::2])) <= {1, 3}


def test_training_items_depend_only_on_seed_and_index(raw_folder, cache_dir) -> None:
    folders, errors = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    assert not errors and len(folders) == 3
    pairs = TrainingPairs(folders, PairSettings(patch=32, thumb=16), seed=5)
    first, again, other = (
        pairs[7],
        TrainingPairs(folders, PairSettings(patch=32, thumb=16), seed=5)[7],
        pairs[8],
    )
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["rgb"], other["rgb"])
    assert first["rgb"].shape == (3, 32, 32) and first["truth"].shape == (4, 16, 16)
    assert first["prior"].shape == (4, 16, 16) and first["thumb"].shape == (6, 16, 16)
    assert float(first["truth"].min()) >= 0.0 and float(first["truth"].max()) <= 1.0


def test_scene_crops_show_the_head_new_scenes_under_the_patch_finish(raw_folder, cache_dir) -> None:
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    whole = TrainingPairs(folders, PairSettings(patch=32, thumb=16), seed=5)
    crops = TrainingPairs(folders, PairSettings(patch=32, thumb=16, scene_crops=1.0), seed=5)
    item = whole.files()[0]
    everything = area_resize(np.array(item.overview_linear), THUMB_SOURCE, THUMB_SOURCE)
    assert np.abs(everything - item.thumb_linear).mean() < 0.01  # the overview is the whole photo
    rng = np.random.default_rng(0)
    linear, libraw = whole.head_view(item, rng)
    assert linear is item.thumb_linear and libraw is item.thumb_libraw  # scene_crops=0: all of it,
    assert rng.random() == np.random.default_rng(0).random()  # and no random number drawn
    views = [crops.head_view(item, np.random.default_rng(seed))[0] for seed in range(4)]
    assert all(v.shape == everything.shape and not np.allclose(v, everything, atol=1e-3) for v in views)
    for index in range(6):  # the head's target is the patch's finish, whatever it was shown
        d = crops.draw(index)
        assert np.isclose(float(d.global_target[2]), np.log2(d.sim.exposure), atol=1e-6)
        daylight = d.item.profile.daylight_neutral()
        assert np.isclose(float(d.global_target[0]), np.log(d.sim.neutral[0] / daylight[0]), atol=1e-6)
    with pytest.raises(UsageError, match="probability"):
        TrainConfig(scene_crops=1.5)


# --- training ------------------------------------------------------------------------------------


def test_tiny_model_lowers_its_loss_on_a_fixed_batch(raw_folder, cache_dir) -> None:
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    knots = preset("tiny").illuminant.tone_knots
    pairs = TrainingPairs(folders, PairSettings(patch=32, thumb=16, tone_knots=knots), seed=0)
    batch = torch.utils.data.default_collate([pairs[i] for i in range(4)])
    assert batch["global_target"].shape == (4, 3 + knots)
    torch.manual_seed(0)
    step = TrainingStep(RawbackModel(preset("tiny")), TrainConfig(p_sigma_max=0.5))
    optimizer = torch.optim.Adam(step.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        torch.manual_seed(1)  # the same noise levels every step: a fixed objective
        loss, _, _ = step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses


def test_interrupted_training_resumes_exactly(raw_folder, cache_dir, tmp_path) -> None:
    config = TrainConfig(**TINY_TRAIN)
    straight = train(
        TrainOptions(data=raw_folder, out=tmp_path / "straight", config=config, cache_dir=cache_dir)
    )

    def interrupt_at_step_4(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 4:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir), interrupt_at_step_4)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 4  # saved on Ctrl-C
    resumed = train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir, resume=True))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(out / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert straight.is_file() and resumed.is_file()
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_other_files_and_names_the_settings_it_changes(
    raw_folder, cache_dir, tmp_path
) -> None:
    import dataclasses
    import shutil

    config = TrainConfig(**{**TINY_TRAIN, "steps": 3})
    out = tmp_path / "run"
    train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache_dir))
    more = tmp_path / "more"
    shutil.copytree(raw_folder, more)
    (more / "c").mkdir()
    write_synthetic_dng(more / "c" / "four.dng", seed=7)
    fresh_cache = tmp_path / "fresh-cache"
    with pytest.raises(RawbackError, match=r"the run's training files differ \(\+c/four.dng\)"):
        train(TrainOptions(data=more, out=out, config=config, cache_dir=fresh_cache, resume=True))
    assert not fresh_cache.exists()  # refused before decoding anything

    events: list[dict] = []
    changed = dataclasses.replace(config, steps=4, lr=1e-4)
    train(
        TrainOptions(data=raw_folder, out=out, config=changed, cache_dir=cache_dir, resume=True),
        events.append,
    )
    (note,) = [e["message"] for e in events if e["event"] == "note"]
    assert note == "resuming with changed settings: lr 0.0003 -> 0.0001, steps 3 -> 4"
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (resume,) = [r for r in records if r["event"] == "resume"]
    assert resume["step"] == 3 and resume["changed"] == {"lr": [0.0003, 0.0001], "steps": [3, 4]}


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint"])
def test_resume_from_a_damaged_checkpoint_is_one_line_before_any_decoding(
    raw_folder, tmp_path, damage: bytes
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(damage)
    config = TrainConfig(**TINY_TRAIN)
    with pytest.raises(RawbackError, match=r"checkpoint\.pt: unreadable checkpoint"):
        train(TrainOptions(data=raw_folder, out=out, config=config, cache_dir=cache, resume=True))
    assert not cache.exists()


def test_a_raw_replaced_by_another_of_the_same_size_and_time_is_decoded_again(tmp_path) -> None:
    """tar, rsync -a and cp -p keep modification times, and a camera's files often share a size."""
    import os

    from rawback.train.data import build_cached, load_cached

    raw, other, cache = tmp_path / "x.dng", tmp_path / "y.dng", tmp_path / "cache"
    write_synthetic_dng(raw, seed=1, compression="none")
    write_synthetic_dng(other, seed=2, compression="none")
    first = build_cached(raw, cache)
    stat = raw.stat()
    assert other.stat().st_size == stat.st_size
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, raw)
    second = build_cached(raw, cache)
    assert second != first
    assert not np.array_equal(load_cached(first).truth, load_cached(second).truth)


def test_a_damaged_cache_entry_is_decoded_again_and_an_unwritable_cache_is_one_line(tmp_path) -> None:
    from rawback.io.atomic import current_umask
    from rawback.train.data import build_cached, readable_cache

    raw, cache = tmp_path / "x.dng", tmp_path / "cache"
    write_synthetic_dng(raw, seed=1)
    folder = build_cached(raw, cache)
    with (folder / "truth.npy").open("r+b") as handle:
        handle.truncate(1000)  # a disk that filled up, a copy cut short
    assert not readable_cache(folder)
    assert build_cached(raw, cache) == folder and readable_cache(folder)
    # Not private to its maker (mkdtemp's 0700): a cache is shared like any folder the user makes.
    assert folder.stat().st_mode & 0o777 == 0o777 & ~current_umask()

    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(RawbackError, match=f"{not_a_folder}: cannot write the training cache"):
        build_cached(raw, not_a_folder)


@pytest.mark.slow
def test_data_parallel_training_under_torchrun_on_cpu_trains_and_resumes(
    raw_folder, cache_dir, tmp_path
) -> None:
    """`torchrun --nproc_per_node=2 -m rawback train` (gloo on the CPU): rank 0 writes the run, and
    `--resume` under torchrun goes on from its checkpoint."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"

    def torchrun(steps: int, *extra: str) -> subprocess.CompletedProcess:
        sets = [
            f"--set={k}={json.dumps(v)}"
            for k, v in {**TINY_TRAIN, "steps": steps, "checkpoint_every": 2}.items()
        ]
        args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "rawback", "train", "--data", str(raw_folder), "--out", str(out), "--cache-dir",
                str(cache_dir), "--device", "cpu", *sets, *extra]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)

    first = torchrun(2)
    assert first.returncode == 0, first.stderr[-2000:]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 2
    second = torchrun(4, "--resume")
    assert second.returncode == 0, second.stderr[-2000:]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4]  # rank 0 logs, once
    model = load_weights(out / "model.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_train_config_overrides_are_typed() -> None:
    config = TrainConfig().with_overrides(["steps=10", 'validation=["a/*"]', "model=tiny", "lr=1"])
    assert (config.steps, config.validation, config.model, config.lr) == (10, ("a/*",), "tiny", 1.0)
    with pytest.raises(UsageError, match="KEY=VALUE"):
        TrainConfig().with_overrides(["stepz=10"])
    with pytest.raises(UsageError, match="must be int"):
        TrainConfig().with_overrides(["steps=ten"])


def test_train_options_become_one_config_and_a_run_is_never_started_over(tmp_path: Path) -> None:
    """`train --config F --set ... --validation G --exclude G`: the globs are settings like any other."""
    from rawback.train.config import train_config
    from rawback.train.loop import check_new_run

    file = tmp_path / "config.json"
    file.write_text(json.dumps({"steps": 7, "lr": 0.001}))
    config = train_config(config_file=file, overrides=["lr=0.002"], validation=["val/*"], exclude=["x/*"])
    assert (config.steps, config.lr, config.validation, config.exclude) == (7, 0.002, ("val/*",), ("x/*",))
    assert train_config() == TrainConfig()
    with pytest.raises(UsageError, match="KEY=VALUE"):
        train_config(overrides=["steps"])
    check_new_run(tmp_path / "new", resume=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    check_new_run(tmp_path, resume=True)
    with pytest.raises(UsageError, match="already holds a run: pass --resume"):
        check_new_run(tmp_path, resume=False)


def test_simulator_settings_come_from_the_training_config(raw_folder, cache_dir) -> None:
    from rawback.isp.simulate import SimulatorSettings

    assert TrainConfig().simulator_settings() == SimulatorSettings()  # empty: the defaults
    config = TrainConfig().with_overrides(
        ["simulator.jpeg_quality=[70,95]", 'simulator.tone_curves=[["rolloff",1]]', "simulator.jpeg_prob=1"]
    )
    settings = config.simulator_settings()
    assert (settings.jpeg_quality, settings.tone_curves, settings.jpeg_prob) == (
        (70, 95),
        (("rolloff", 1),),
        1,
    )
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config  # config.json round trip
    for bad, message in (
        ("simulator.jpeg_qualty=[70,95]", "unknown simulator setting"),
        ("simulator.jpeg_quality=90", "must look like"),
        ('simulator.tone_curves=[["filmic",1]]', "choose among"),
    ):
        with pytest.raises(UsageError, match=message):
            TrainConfig().with_overrides([bad])
    # The items follow the configured finish: every tone curve is the one family allowed.
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    pairs = TrainingPairs(folders, PairSettings(patch=32, thumb=16, simulator=settings), seed=5)
    drawn = [pairs.draw(i).sim.params for i in range(6)]
    assert all(p["tone_curve"] == "rolloff" for p in drawn if p["member"] == "parametric")
    assert all(70 <= p["jpeg"]["quality"] <= 95 for p in drawn)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "bogus"], "--device must be auto, cpu, cuda, cuda:N or mps, not 'bogus'"),
        (["--device", "cuda:7"], "--device cuda:7: "),
        (["--resume"], "checkpoint.pt: nothing to resume"),
        (["--validation", "nomatch/*"], "--validation nomatch/*: matches no RAW file under"),
    ],
)
def test_cli_train_refuses_bad_starts_in_one_line_before_any_work(
    raw_folder, tmp_path, extra: list[str], message: str
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache), *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == (2 if "bogus" in extra else 1), result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not out.exists() and not cache.exists()  # nothing decoded, no empty run folder


def test_cli_train_refuses_a_run_folder_that_is_a_file_before_decoding(raw_folder, tmp_path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    out.write_text("not a folder")
    result = CliRunner().invoke(
        app, ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {out}: is a file, not a run folder\n"
    assert not cache.exists()


def test_cli_calibrate_refuses_a_missing_output_folder_before_fitting(raw_folder, tmp_path) -> None:
    out = tmp_path / "missing" / "gated.pt"
    result = CliRunner().invoke(app, ["calibrate", "--data", str(raw_folder), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {out.parent}: the output folder does not exist\n"


def test_cli_train_validates_writes_weights_and_refuses_to_clobber(raw_folder, cache_dir, tmp_path) -> None:
    out = tmp_path / "run"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY_TRAIN, "steps": 2, "workers": 1}.items()]
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache_dir),
            "--validation", "b/*", *sets]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation at step 2" in result.output  # held-out file scored beside the baseline
    assert (out / "model.pt").is_file() and (out / "model.json").is_file()
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert "validation" in events
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=1)
    converted = CliRunner().invoke(app, ["convert", str(jpeg), "--weights", str(out / "model.pt"), "-q"])
    assert converted.exit_code == 0, converted.output
    with rawpy.imread(str(tmp_path / "photo.dng")) as raw:
        assert raw.raw_image_visible.shape == (90, 120)


# --- weights, determinism, shipped model ---------------------------------------------------------


def test_weights_round_trip_and_damaged_file(tiny_weights, tmp_path) -> None:
    model = load_weights(tiny_weights)
    assert model.config == preset("tiny")
    assert json.loads(tiny_weights.with_suffix(".json").read_text())["name"] == "tiny"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(RawbackError, match="not a rawback weights file"):
        load_weights(bad)
    payload = torch.load(tiny_weights, weights_only=True)
    del payload["state"]["denoiser.unet.out.weight"]  # as from another version of the network
    torch.save(payload, bad)
    with pytest.raises(RawbackError, match="do not fit"):
        load_weights(bad)


def test_same_seed_same_dng_whatever_the_batch(tmp_path) -> None:
    a, b = small_jpeg(tmp_path / "a.jpg", seed=1), small_jpeg(tmp_path / "b.jpg", seed=2)
    # residual "full": the network's output everywhere (the photos' generic profile is a camera the
    # model does not know, whose residual applies only where clipped by default)
    settings = DiffusionSettings(sampler="euler", steps=2, seed=3, tile=64, overlap=16, residual="full")
    options = ConvertOptions(diffusion=settings)
    convert_file(a, tmp_path / "a1.dng", options)
    convert_file(b, tmp_path / "b1.dng", options)
    convert_file(a, tmp_path / "a2.dng", options)
    assert (tmp_path / "a1.dng").read_bytes() == (tmp_path / "a2.dng").read_bytes()
    other = ConvertOptions(diffusion=dataclasses.replace(settings, seed=4))
    convert_file(a, tmp_path / "a3.dng", other)
    with rawpy.imread(str(tmp_path / "a1.dng")) as r1, rawpy.imread(str(tmp_path / "a3.dng")) as r3:
        assert not np.array_equal(r1.raw_image_visible, r3.raw_image_visible)


def test_bundled_weights_convert_a_small_jpeg(tmp_path) -> None:
    assert BUNDLED.is_file() and BUNDLED.stat().st_size < 16 * 2**20
    model = load_weights(BUNDLED)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))
    result = convert_file(jpeg, tmp_path / "photo.dng", ConvertOptions())  # the defaults: the model
    assert any(note.startswith("diffusion:") for note in result.notes)
    with rawpy.imread(str(tmp_path / "photo.dng")) as raw:
        assert raw.raw_image_visible.shape == (150, 200)
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8)
    original = np.asarray(Image.open(jpeg), dtype=np.float64)
    assert np.abs(rgb.astype(np.float64) - original).mean() < 20  # it looks like the photo


def test_default_sampler_agrees_between_cli_and_library() -> None:
    assert (DiffusionSettings().sampler, DiffusionSettings().steps) == (DEFAULT_SAMPLER, DEFAULT_STEPS)


def test_tiles_default_to_the_device_and_the_help_says_which() -> None:
    (cpu_tile, cpu_batch), (gpu_tile, gpu_batch) = TILING["cpu"], TILING["gpu"]
    assert DiffusionSettings().tiling("cpu") == (cpu_tile, cpu_batch)
    assert DiffusionSettings().tiling("cuda") == DiffusionSettings().tiling("mps") == (gpu_tile, gpu_batch)
    assert DiffusionSettings(tile=96, tile_batch=3).tiling("cuda") == (96, 3)  # what is asked for wins
    assert DiffusionSettings(tile=96).tiling("cpu") == (96, cpu_batch)
    with pytest.raises(ValueError, match="--overlap even and below"):
        DiffusionSettings(overlap=min(cpu_tile, gpu_tile))  # must fit below every default tile
    result = CliRunner().invoke(app, ["convert", "--help"], env={"COLUMNS": "200"})
    help_text = " ".join(result.output.split())
    assert f"Default: {cpu_tile} on the CPU, {gpu_tile} on a GPU" in help_text
    assert f"Default: {cpu_batch} on the CPU, {gpu_batch} on a GPU" in help_text


def test_precision_choices_are_resolved_per_device() -> None:
    cpu, gpu, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert not uses_bf16("fp32", cpu) and not uses_bf16("fp32", gpu)
    assert uses_bf16("bf16", cpu) and uses_bf16("auto", gpu)
    assert not uses_bf16("auto", mps)  # no bf16 autocast there: fp32
    with pytest.raises(RawbackError, match="not supported on mps"):
        uses_bf16("bf16", mps)
    with pytest.raises(ValueError, match="--precision must be"):
        DiffusionSettings(precision="fp16")


def test_bf16_changes_the_dng_only_slightly(tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=5)
    mosaics = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.dng"
        settings = DiffusionSettings(device="cpu", precision=precision, residual="full")
        convert_file(jpeg, out, ConvertOptions(diffusion=settings))
        with rawpy.imread(str(out)) as raw:
            mosaics[precision] = raw.raw_image_visible.astype(np.float64) / raw.white_level
    difference = np.abs(mosaics["bf16"] - mosaics["fp32"])
    assert difference.max() > 0  # bf16 really ran
    assert difference.mean() < 1e-4 and difference.max() < 5e-3


def test_eval_sweeps_step_counts(raw_folder, tiny_weights, tmp_path) -> None:
    settings = DiffusionSettings(weights=str(tiny_weights), sampler="heun", tile=64, overlap=16, device="cpu")
    report = run_eval(
        EvalOptions(data=raw_folder, method="diffusion", include=("b/*",), diffusion=settings, steps=(1, 2))
    )
    assert report.rows == [
        diffusion_label(DiffusionSettings(sampler="heun", steps=1)),
        "diffusion (heun, 2 steps)",
        "analytic",
        "analytic, oracle white balance",
    ]
    (image,) = report.images
    assert image.error is None
    for row in report.rows:
        assert (
            np.isfinite(image.rows[row]["psnr_packed"])
            and image.rows[row]["exposure_error_stops"] is not None
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


def test_bad_settings_are_one_line_usage_errors(tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0)
    for args, message in (
        (["--sampler", "ddim"], "unknown sampler"),
        (["--weights", str(tmp_path / "missing.pt")], "model weights not found"),
        (["--device", "gpu0"], "--device must be"),
        (["--tile", "101"], "--tile must be even"),
        (["--precision", "fp16"], "--precision must be"),
        (["--residual", "half"], "'half' is not one of"),
    ):
        result = CliRunner().invoke(app, ["convert", str(jpeg), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    with pytest.raises(ValueError, match="--residual must be"):
        DiffusionSettings(residual="half")
    with pytest.raises(UsageError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(UsageError, match="model must be"):
        TrainConfig().with_overrides(["model=huge"])


def test_one_step_sweep_is_one_row(raw_folder) -> None:
    from rawback.evaluate.run import plan_rows

    rows = plan_rows(EvalOptions(data=raw_folder, method="diffusion", steps=(1, 2, 4),
                                 diffusion=DiffusionSettings(sampler="one-step")))  # fmt: skip
    assert [r.label for r in rows] == ["diffusion (one-step)", "analytic", "analytic, oracle white balance"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_conversion_matches_the_cpu(tmp_path) -> None:
    """bf16 on the GPU against fp32 on the CPU: the same photo within a few raw counts."""
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(256, 192))
    for device in ("cpu", "cuda"):
        options = ConvertOptions(diffusion=DiffusionSettings(device=device, residual="full"))
        convert_file(jpeg, tmp_path / f"{device}.dng", options)
    with rawpy.imread(str(tmp_path / "cpu.dng")) as a, rawpy.imread(str(tmp_path / "cuda.dng")) as b:
        diff = np.abs(a.raw_image_visible.astype(int) - b.raw_image_visible.astype(int))
        assert np.percentile(diff, 99) <= 0.01 * a.white_level


def test_ensemble_is_the_mean_of_its_members(tiny_weights) -> None:
    from rawback.inference import sample_residual

    model = load_weights(tiny_weights)
    torch.manual_seed(0)
    cond, camera, finish = torch.randn(1, 16, 24, 20), torch.randn(1, 12), torch.randn(1, 8)
    one = DiffusionSettings(sampler="euler", steps=2, tile=32, overlap=8)
    two = DiffusionSettings(sampler="euler", steps=2, tile=32, overlap=8, ensemble=2)
    a = sample_residual(model, cond, camera, finish, one, seed=5)
    b = sample_residual(model, cond, camera, finish, one, seed=6)
    both = sample_residual(model, cond, camera, finish, two, seed=5)
    assert torch.allclose(both, (a + b) / 2, atol=1e-12) and not torch.equal(a, b)


# --- progress within a photo ------------------------------------------------------------------------


def test_convert_reports_progress_within_a_photo(tiny_weights, tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))
    settings = DiffusionSettings(weights=tiny_weights, sampler="euler", steps=2, tile=64, overlap=16)
    fractions: list[float] = []
    convert_file(jpeg, tmp_path / "photo.dng", ConvertOptions(diffusion=settings), fractions.append)
    # 2 evaluations over a 100x75 packed photo in 32-pixel tiles (overlap 8): several updates each
    assert len(fractions) > 4
    assert all(a <= b for a, b in itertools.pairwise(fractions))
    assert fractions[-1] == pytest.approx(1.0) and 0.0 < fractions[0] < 0.5
    analytic: list[float] = []
    convert_file(jpeg, tmp_path / "fast.dng", ConvertOptions(method="analytic"), analytic.append)
    assert analytic == []  # instant: nothing to report


def test_the_progress_bar_moves_within_a_photo_and_gives_back_on_failure(tmp_path) -> None:
    from rawback.batch import Job, Outcome, Status
    from rawback.console import RichReporter

    jobs = [Job(tmp_path / name, tmp_path / f"{name}.dng") for name in ("a.jpg", "b.jpg")]
    for job, size in zip(jobs, (1000, 3000), strict=True):
        job.source.write_bytes(b"x" * size)
    reporter = RichReporter()
    with reporter:
        reporter.start(jobs)
        task = reporter.progress.tasks[0]
        reporter.file_started(jobs[0])
        reporter.file_progress(jobs[0], 0.5)
        assert task.completed == pytest.approx(500)
        reporter.file_done(Outcome(jobs[0], Status.CONVERTED))
        assert task.completed == pytest.approx(1000)
        reporter.file_started(jobs[1])
        reporter.file_progress(jobs[1], 0.25)
        assert task.completed == pytest.approx(1750)
        reporter.file_done(Outcome(jobs[1], Status.FAILED, error="b.jpg: broken"))
        assert task.completed == pytest.approx(1000) and task.total == pytest.approx(1000)


def test_attention_is_softmax_of_scaled_dot_products_per_head() -> None:
    # The module lays q, k, v out for the fused kernel; this pins the layout to the textbook
    # formula, so a wrong permutation cannot pass for a faster one.
    from rawback.model.unet import Attention

    torch.manual_seed(0)
    block = Attention(channels=64, head_channels=32, groups=8).double()
    torch.nn.init.normal_(block.out.weight)  # zero-initialised out would hide the attention
    x = torch.randn(2, 64, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        n, c, h, w = x.shape
        qkv = block.qkv(block.norm(x)).reshape(n, 3, block.heads, c // block.heads, h * w)
        heads = []
        for head in range(block.heads):
            q, k, v = (qkv[:, i, head].transpose(1, 2) for i in range(3))  # (n, positions, channels)
            weights = torch.softmax(q @ k.transpose(1, 2) / (c // block.heads) ** 0.5, dim=-1)
            heads.append((weights @ v).transpose(1, 2))  # (n, channels, positions)
        expected = x + block.out(torch.cat(heads, dim=1).reshape(n, c, h, w))
        assert torch.allclose(block(x), expected, atol=1e-10)


def test_an_interrupt_during_an_optimiser_step_arrives_after_the_step_count() -> None:
    """Ctrl-C between the weights' update and the step count would save a checkpoint one step
    ahead of its count, which would not resume exactly: the interrupt waits for the block."""
    import os
    import signal

    from rawback.train.loop import signals_deferred

    done = []
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("weights")
        done.append("step")
    assert done == ["weights", "step"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


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

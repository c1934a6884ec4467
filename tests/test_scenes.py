"""rawback.train.scenes: synthetic training pairs from photographs, mixed with the real RAW files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.cli.app import app
from rawback.errors import UsageError
from rawback.isp.scene_raw import SceneRawSettings
from rawback.train.config import TrainConfig, train_config
from rawback.train.data import PairSettings, TrainingPairs, build_cache
from rawback.train.scenes import ScenePairs, SceneSettings, find_scenes, library_profiles, load_scene
from tests.conftest import SHARED_DATA
from tests.test_train import TINY_TRAIN

SHARED_SCENES = SHARED_DATA / "scenes"
SETTINGS = PairSettings(patch=32, thumb=16, tone_knots=4)


def write_scene(path: Path, seed: int, size: tuple[int, int] = (240, 180)) -> Path:
    """A photo-like picture: smooth coloured gradients, texture, and a bright sky band at the top."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    base = rng.uniform(0.2, 0.8, 3)
    img = base + 0.3 * np.stack([np.sin(6 * x + c + seed) * np.cos(4 * y - c) for c in range(3)], axis=-1)
    img += 0.05 * rng.standard_normal((h, w, 3))
    img[: h // 4] = 0.97  # an overcast sky, near white
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    for i in range(3):
        write_scene(root / ("sub" if i else "") / f"scene{i}.jpg", seed=i)
    (root / "notes.txt").write_text("not a photo")
    return root


def test_find_scenes_lists_the_photos_and_refuses_an_empty_folder(scene_folder, tmp_path) -> None:
    assert [p.name for p in find_scenes(scene_folder)] == ["scene0.jpg", "scene1.jpg", "scene2.jpg"]
    with pytest.raises(UsageError, match="no JPEG or PNG"):
        find_scenes(tmp_path)
    with pytest.raises(UsageError, match="not a folder"):
        find_scenes(tmp_path / "missing")


def test_the_library_lends_hundreds_of_cameras() -> None:
    cameras = library_profiles()
    assert len(cameras) > 700
    assert len({c.white_level for c in cameras}) > 5  # 12-, 14-, 16-bit and odd sensors alike


def test_scene_items_have_the_real_pairs_format(scene_folder, raw_folder, cache_dir) -> None:
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    real = TrainingPairs(folders, SETTINGS, seed=0)[0]
    scenes = ScenePairs(find_scenes(scene_folder), SETTINGS, seed=0)
    mixed = TrainingPairs(folders, SETTINGS, seed=0, scenes=scenes, scene_fraction=1.0)
    for index in range(4):
        item = mixed[index]
        assert item.keys() == real.keys()
        for key, value in item.items():
            assert value.shape == real[key].shape and value.dtype == real[key].dtype, key
            assert torch.isfinite(value).all(), key
        assert item["truth"].min() >= 0.0 and item["truth"].max() <= 1.0
    again = TrainingPairs(folders, SETTINGS, seed=0, scenes=scenes, scene_fraction=1.0)[3]
    assert all(torch.equal(again[k], mixed[3][k]) for k in again)  # (seed, index) decides the item


def test_the_condition_clips_where_the_exposure_pushes_it_while_the_truth_stays_below_white(
    scene_folder,
) -> None:
    quiet = SceneRawSettings(headroom=(0.9, 0.9), noise=False)  # noise at ISO 12000 reaches white
    scene = SceneSettings(raw=quiet, condition_stops=(1.5, 1.5))
    pairs = ScenePairs(
        find_scenes(scene_folder), dataclasses.replace(SETTINGS, patch=64), seed=0, scene=scene
    )
    clipped = []
    for index in range(12):
        d = pairs.draw(index)
        assert d.sim.exposure == pytest.approx(2**1.5)
        assert d.global_target[2] == pytest.approx(1.5)  # the head learns the extra exposure
        assert d.truth.max() <= 0.9  # the truth keeps headroom: nothing at the white level
        clipped.append(float((d.rgb.max(axis=-1) >= 254 / 255).mean()))
    assert np.mean(clipped) > 0.1  # the sky and more blow out in the photo


def test_the_libraw_member_is_libraws_render_of_the_synthetic_raw_at_the_extra_exposure(scene_folder) -> None:
    """The default protocol's input is LibRaw's render of a RAW; scene items show it too. The
    analytic inverse given the item's neutral, exposure and BT.709 curve recovers the truth where
    the photo did not clip: the render is of these very counts, at this exposure."""
    from rawback.isp.unprocess import UnprocessSettings, unprocess

    quiet = SceneRawSettings(headroom=(0.5, 0.5), noise=False)
    scene = SceneSettings(raw=quiet, condition_stops=(0.5, 0.5), libraw_share=1.0)
    lossless = dataclasses.replace(SETTINGS.simulator, jpeg_prob=0.0)
    settings = dataclasses.replace(SETTINGS, patch=64, simulator=lossless)
    pairs = ScenePairs(find_scenes(scene_folder), settings, seed=3, scene=scene)
    for index in range(4):
        d = pairs.draw(index)
        assert d.sim.params["member"] == "libraw" and d.transfer == "bt709"
        assert d.sim.exposure == pytest.approx(2**0.5)
        assert d.global_target[2] == pytest.approx(0.5)
        inverse = UnprocessSettings(transfer="bt709", tone_curve="none")
        estimate = unprocess(d.rgb, d.item.profile, d.sim.neutral, inverse) / d.sim.exposure
        inner = (slice(4, -4), slice(4, -4))  # demosaics differ at the patch's border
        ok = (d.rgb.max(axis=-1) < 250 / 255)[inner]
        assert ok.mean() > 0.3
        error = (estimate - d.truth)[inner][ok]
        assert np.sqrt(np.mean(error**2)) < 0.01, index  # 8-bit steps and AHD's edges, no more
    folder, small = find_scenes(scene_folder), dataclasses.replace(SETTINGS, patch=32)
    mixed = ScenePairs(folder, small, seed=4, scene=SceneSettings(libraw_share=0.4))
    members = [mixed.draw(i).sim.params["member"] for i in range(40)]
    assert 0.15 < members.count("libraw") / len(members) < 0.7
    # Off by default, and then the item stream is the one of the engine without the member.
    plain = ScenePairs(folder, small, seed=4)
    assert all(plain.draw(i).sim.params["member"] == "parametric" for i in range(8))


def test_the_mixture_draws_the_configured_share_and_leaves_real_items_as_they_were(
    scene_folder, raw_folder, cache_dir
) -> None:
    folders, _ = build_cache(sorted(raw_folder.rglob("*.dng")), cache_dir)
    scenes = ScenePairs(find_scenes(scene_folder), SETTINGS, seed=0)
    mixed = TrainingPairs(folders, SETTINGS, seed=0, scenes=scenes, scene_fraction=0.3)
    share = np.mean([mixed.is_scene(i) for i in range(4000)])
    assert share == pytest.approx(0.3, abs=0.025)
    plain = TrainingPairs(folders, SETTINGS, seed=0)
    real_index = next(i for i in range(100) if not mixed.is_scene(i))
    scene_index = next(i for i in range(100) if mixed.is_scene(i))
    assert all(torch.equal(plain[real_index][k], v) for k, v in mixed[real_index].items())
    assert mixed.draw(scene_index).item.name.startswith("scene")
    assert not TrainingPairs(folders, SETTINGS, seed=0, scene_fraction=0.5).is_scene(scene_index)  # no scenes


def test_the_training_config_holds_the_scenes_and_their_share(tmp_path) -> None:
    config = train_config(scenes=tmp_path, overrides=["scene_fraction=0.25"])
    assert config.scenes == str(tmp_path) and config.scene_fraction == 0.25
    assert json.loads(config.to_json())["scenes"] == str(tmp_path)
    with pytest.raises(UsageError, match="scene_fraction is a probability"):
        TrainConfig(scene_fraction=1.5)
    assert train_config(overrides=["scene_exposure_stops=[0.5, 2]"]).scene_exposure_stops == (0.5, 2)
    with pytest.raises(UsageError, match="scene_exposure_stops must be"):
        train_config(overrides=["scene_exposure_stops=[2, 1]"])


def test_cli_train_with_scenes_runs_and_records_them(raw_folder, cache_dir, scene_folder, tmp_path) -> None:
    out = tmp_path / "run"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY_TRAIN, "steps": 3}.items()]
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache_dir),
            "--scenes", str(scene_folder), "--set", "scene_fraction=0.5", *sets]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "3 scenes (50% of items)" in result.output
    assert (out / "model.pt").is_file()
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["scenes"] == str(scene_folder) and saved["scene_fraction"] == 0.5


def test_cli_train_refuses_a_scenes_folder_without_photos_in_one_line(raw_folder, tmp_path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    (tmp_path / "empty").mkdir()
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache),
            "--scenes", str(tmp_path / "empty")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "no JPEG or PNG photographs" in line
    assert not out.exists() and not cache.exists()  # refused before decoding anything


def test_cli_train_on_scenes_alone_needs_no_raw_files(scene_folder, tmp_path) -> None:
    """The lent GPU's run: no --data, so nothing is decoded and nothing validated, and it says so."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY_TRAIN, "steps": 2}.items()]
    args = ["train", "--out", str(out), "--cache-dir", str(cache), "--scenes", str(scene_folder), *sets]
    result = CliRunner().invoke(app, [*args, "--set", "scene_fraction=1.0"])
    assert result.exit_code == 0, result.output
    assert "scenes only: no RAW files, so no validation on real files" in result.output
    assert "3 scenes (100% of items)" in result.output
    assert (out / "model.pt").is_file() and not cache.exists()
    # Any RAW share needs the RAW files: one line, before any work.
    refused = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "other"), "--set", "scene_fraction=0.5"]
    )
    assert refused.exit_code == 2, refused.output
    (line,) = refused.stderr.splitlines()
    assert line.startswith(
        "error: --data is required, unless --scenes is given with --set scene_fraction=1.0"
    )
    assert not (tmp_path / "other").exists()


@pytest.mark.shared_data
def test_two_real_scenes_make_pairs_that_clip_and_keep_headroom() -> None:
    if not SHARED_SCENES.is_dir():
        pytest.skip(f"scenes not found at {SHARED_SCENES}")
    paths = find_scenes(SHARED_SCENES)[:2]
    assert load_scene(paths[0], 256).shape[:2][::-1] != (0, 0)
    pairs = ScenePairs(paths, dataclasses.replace(SETTINGS, patch=128), seed=1)
    draws = [pairs.draw(i) for i in range(8)]
    assert {d.item.name for d in draws} == {p.name for p in paths}
    assert all(d.truth.max() < 1.0 for d in draws)
    assert len({d.item.profile.name for d in draws}) == 8  # a camera of the library per item

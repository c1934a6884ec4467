"""The training data (rawback.train.data): Bayer augmentation, the training items, scene crops and
the decoded cache, on synthetic DNGs written with our own writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rawback.errors import RawbackError, UsageError
from rawback.features import area_resize
from rawback.train.config import TrainConfig
from rawback.train.data import (
    SYMMETRIES,
    THUMB_SOURCE,
    PairSettings,
    TrainingPairs,
    bayer_augment,
    build_cache,
)
from tests.helpers import write_synthetic_dng


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

"""The lent GPU's recipe (docs/training.md, "Training on a lent GPU"): the scene pack, a run that
travels in digest-checked parts and resumes exactly, and training on scenes without rawpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from rawback.train.config import TrainConfig
from rawback.train.loop import TrainOptions, train
from tests.conftest import REPO
from tests.test_scenes import write_scene
from tests.test_train import TINY_TRAIN
from tools.pack_scenes import pack as pack_scenes
from tools.travel_run import pack as pack_run
from tools.travel_run import unpack as unpack_run


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    write_scene(root / "a" / "wide.jpg", seed=0, size=(400, 300))
    write_scene(root / "b" / "tall.png", seed=1, size=(90, 120))  # never enlarged; PNG becomes JPEG
    write_scene(root / "c.jpg", seed=2, size=(240, 180))
    (root / "MANIFEST.tsv").write_text("path\tlicence\na/wide.jpg\tCC0-1.0\n")
    (root / "SOURCES.md").write_text("# sources\n")
    return root


def test_the_scene_pack_reduces_every_photo_keeps_the_licences_and_stays_under_its_cap(
    scenes, tmp_path
) -> None:
    out = tmp_path / "pack"
    count, mib = pack_scenes(scenes, out, side=120, quality=80)
    assert count == 3 and 0 < mib < 1
    sizes = {p.relative_to(out).as_posix(): Image.open(p).size for p in out.rglob("*.jpg")}
    assert sizes == {"a/wide.jpg": (160, 120), "b/tall.jpg": (90, 120), "c.jpg": (160, 120)}
    assert (out / "MANIFEST.tsv").read_text() == (scenes / "MANIFEST.tsv").read_text()
    assert (out / "SOURCES.md").is_file()
    with pytest.raises(FileExistsError):
        pack_scenes(scenes, out)
    with pytest.raises(ValueError, match="over --max-mib"):
        pack_scenes(scenes, tmp_path / "capped", side=120, max_mib=0.001)
    assert not (tmp_path / "capped").exists()


def test_a_run_travels_in_checked_parts_and_resumes_exactly(scenes, tmp_path) -> None:
    config = TrainConfig(**{**TINY_TRAIN, "scenes": str(scenes), "scene_fraction": 1.0})
    train(TrainOptions(data=None, out=tmp_path / "straight", config=config))

    def interrupt_at_step_4(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the device's SIGTERM: a checkpoint at step 4
        train(TrainOptions(data=None, out=tmp_path / "device", config=config), interrupt_at_step_4)
    parts = tmp_path / "parts"
    manifest = pack_run(tmp_path / "device", parts, part_mib=0.25)
    checkpoint = next(f for f in manifest["files"] if f["name"] == "checkpoint.pt")
    assert len(checkpoint["parts"]) > 1 and all(p["bytes"] <= 0.25 * 2**20 for p in checkpoint["parts"])
    assert {f["name"] for f in manifest["files"]} >= {"checkpoint.pt", "model.pt", "log.jsonl"}

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for part in parts.iterdir():
        (damaged / part.name).write_bytes(part.read_bytes())
    first = damaged / checkpoint["parts"][0]["name"]
    first.write_bytes(b"x" + first.read_bytes()[1:])
    with pytest.raises(ValueError, match="damaged in transit"):
        unpack_run(damaged, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    unpack_run(parts, tmp_path / "next-session")
    train(TrainOptions(data=None, out=tmp_path / "next-session", config=config, resume=True))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "next-session" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_training_on_scenes_needs_neither_rawpy_nor_imagecodecs_nor_simplejpeg(scenes, tmp_path) -> None:
    """What the lent GPU lacks (only piexif's wheel, pure Python, travels for training)."""
    blocked = "import sys; sys.modules.update(rawpy=None, imagecodecs=None, simplejpeg=None)"
    sets = [f"--set={k}={v}" for k, v in {**TINY_TRAIN, "steps": 1}.items()]
    argv = ["rawback", "train", "--scenes", str(scenes), "--set=scene_fraction=1.0", "--out",
            str(tmp_path / "run"), "--quiet", *sets]  # fmt: skip
    code = f"{blocked}; sys.argv = {argv!r}; from rawback.cli import run; run()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model.pt").is_file()

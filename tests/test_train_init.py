"""Fine-tuning (`rawback train --init WEIGHTS`): a run starts from the given weights with their
architecture, records what it started from, resumes without the flag, and refuses bad starts in one
line before anything is decoded."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rawback.cli import app
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.train.config import TrainConfig
from rawback.train.init import init_weights_path, with_init
from rawback.weights import BUNDLED, WEIGHTS_NAME, load_weights, save_weights
from tests.test_train import TINY_TRAIN

# lr 0 (warm-up, peak and final): the optimiser leaves the weights where they started
FROZEN = {**TINY_TRAIN, "steps": 2, "lr": 0.0, "lr_final": 0.0}


@pytest.fixture(scope="module")
def calibrated_tiny(tmp_path_factory) -> Path:
    """Tiny weights as the shipped model is: a residual gate and a list of known cameras."""
    torch.manual_seed(3)
    config = dataclasses.replace(preset("tiny"), known_cameras=("acme one",), residual_gate=True)
    path = tmp_path_factory.mktemp("init") / "calibrated.pt"
    save_weights(RawbackModel(config), path)
    return path


def _train(raw_folder: Path, cache_dir: Path, out: Path, *extra: str, settings: dict | None = None):
    sets = [f"--set={k}={json.dumps(v)}" for k, v in (settings or {}).items()]
    args = ["train", "--data", str(raw_folder), "--out", str(out), "--cache-dir", str(cache_dir), "-q"]
    return CliRunner().invoke(app, [*args, *sets, *extra])


def test_init_starts_from_the_weights_with_their_architecture(
    raw_folder, cache_dir, tmp_path, calibrated_tiny
) -> None:
    out = tmp_path / "run"
    # no --set model: the default preset is "small", the file's architecture ("tiny") wins
    settings = {k: v for k, v in FROZEN.items() if k != "model"}
    result = _train(raw_folder, cache_dir, out, "--init", str(calibrated_tiny), settings=settings)
    assert result.exit_code == 0, result.output
    start, tuned = load_weights(calibrated_tiny), load_weights(out / "model.pt")
    assert tuned.config.name == "tiny"
    for key, value in tuned.state_dict().items():  # EMA and model both start from the file
        assert torch.equal(value, start.state_dict()[key]), key
    # The stale gate is dropped; the file's cameras stay known, the run's are added.
    assert not tuned.config.residual_gate and tuned.gate is None
    assert "acme one" in tuned.config.known_cameras and len(tuned.config.known_cameras) > 1
    recorded = json.loads((out / "train_config.json").read_text())
    digest = hashlib.sha256(calibrated_tiny.read_bytes()).hexdigest()
    assert (recorded["init"], recorded["init_sha256"]) == (str(calibrated_tiny), digest)
    assert recorded["model"] == "tiny"


def test_init_differs_from_a_run_from_scratch(raw_folder, cache_dir, tmp_path, calibrated_tiny) -> None:
    scratch = _train(raw_folder, cache_dir, tmp_path / "scratch", settings=FROZEN)
    tuned = _train(raw_folder, cache_dir, tmp_path / "tuned", "--init", str(calibrated_tiny), settings=FROZEN)
    assert scratch.exit_code == tuned.exit_code == 0, scratch.output + tuned.output
    a, b = (load_weights(tmp_path / run / "model.pt").state_dict() for run in ("scratch", "tuned"))
    assert a.keys() == b.keys() and not all(torch.equal(a[k], b[k]) for k in a)


def test_a_fine_tuning_run_resumes_without_init_or_its_file(
    raw_folder, cache_dir, tmp_path, calibrated_tiny
) -> None:
    init = tmp_path / "copy.pt"
    init.write_bytes(calibrated_tiny.read_bytes())
    out = tmp_path / "run"
    first = _train(raw_folder, cache_dir, out, "--init", str(init), settings={**TINY_TRAIN, "steps": 2})
    assert first.exit_code == 0, first.output
    init.unlink()  # the checkpoint holds the architecture; the init file is no longer needed
    resumed = _train(raw_folder, cache_dir, out, "--resume", settings={**TINY_TRAIN, "steps": 3})
    assert resumed.exit_code == 0, resumed.output
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    (resume,) = [r for r in records if r["event"] == "resume"]
    assert resume["changed"] == {"steps": [2, 3]}  # init and model carried over, not "changed"
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["init"] == str(init) and recorded["model"] == "tiny"
    assert load_weights(out / "model.pt").config.known_cameras[0] == "acme one"


def _damaged(tmp_path: Path) -> Path:
    path = tmp_path / "damaged.pt"
    path.write_bytes(b"not torch at all")
    return path


def _wrong_shapes(tmp_path: Path) -> Path:
    """A file whose config says "small" but whose tensors are a tiny model's."""
    path = tmp_path / "wrong.pt"
    save_weights(RawbackModel(preset("tiny")), path)
    payload = torch.load(path, weights_only=True)
    payload["config"] = preset("small").to_json()
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("make", "extra", "code", "message"),
    [
        (lambda tmp, tiny: tmp / "missing.pt", [], 1, "missing.pt: model weights not found"),
        (lambda tmp, tiny: _damaged(tmp), [], 1, "damaged.pt: not a rawback weights file"),
        (lambda tmp, tiny: _wrong_shapes(tmp), [], 1, "wrong.pt: weights do not fit"),
        (lambda tmp, tiny: tiny, ["--set", "model=small"], 2, "holds a 'tiny' model, so model='small'"),
        (lambda tmp, tiny: tiny, ["--resume"], 2, "--init starts a new run; --resume continues"),
    ],
)
def test_bad_inits_are_one_line_before_any_decoding(
    raw_folder, tmp_path, tiny_weights, make, extra: list[str], code: int, message: str
) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    result = _train(raw_folder, cache, out, "--init", str(make(tmp_path, tiny_weights)), *extra)
    assert result.exit_code == code, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line
    assert not out.exists() and not cache.exists()


def test_a_named_preset_that_agrees_and_a_config_file_naming_it_are_accepted(tmp_path, tiny_weights) -> None:
    from rawback.train.config import names_model, train_config

    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model": "tiny", "init_sha256": "0" * 64}))
    assert names_model(config_file, []) and names_model(None, ["model=tiny"]) and not names_model(None, [])
    # --init replaces the digest an earlier run's config recorded for its own init weights
    settings = train_config(config_file=config_file, init=tiny_weights)
    checked = with_init(settings, model_named=True)
    assert checked.model == "tiny"
    assert checked.init_sha256 == hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    with pytest.raises(Exception, match="SHA-256 differs"):  # the file a config names has changed
        with_init(dataclasses.replace(checked, init_sha256="0" * 64), model_named=False)


def test_shipped_names_the_bundled_model(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert init_weights_path("shipped") == init_weights_path(WEIGHTS_NAME) == BUNDLED
    assert init_weights_path("mine.pt") == Path("mine.pt")
    if not BUNDLED.is_file():
        pytest.skip("no bundled model in this install")
    settings = with_init(TrainConfig(init="shipped"), model_named=False)
    assert settings.init == str(BUNDLED) and settings.model == load_weights(BUNDLED).config.name

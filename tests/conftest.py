"""Shared fixtures. Tests that need the team's real RAW files read them from ../shared/data and
skip cleanly when that folder is absent; everything else makes its own data. Tests marked `gpu`
skip where no CUDA GPU is available."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_synthetic_dng

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_RAW = SHARED_DATA / "raw"

# The suggested validation split of ../shared/data/README.md.
VALIDATION_FILES = (
    "canon_s40/CRW_0118.CRW",
    "canon_g2/CRW_0304.CRW",
    "gopro/HERO8_GOPR0009.dng",
    "kodak_dc120/P003917.KDC",
)


@pytest.fixture(scope="session")
def shared_raw() -> Path:
    if not SHARED_RAW.is_dir():
        pytest.skip(f"camera RAW files not found at {SHARED_RAW}")
    return SHARED_RAW


def shared_raw_files() -> list[Path]:
    """Every RAW file under ../shared/data/raw (empty when absent), for parametrised tests."""
    if not SHARED_RAW.is_dir():
        return []
    return sorted(p for p in SHARED_RAW.rglob("*") if p.is_file() and not p.name.startswith("."))


def colour_profile(name: str):
    """A built-in camera profile without its measured JPEG finish (tone curve and saturation): for
    tests that make their own JPEGs with the camera's colours, or set or measure a finish themselves."""
    import dataclasses

    from rawback import camera

    profile = camera.builtin_profiles()[name]
    notes = tuple(n for n in profile.notes if not n.startswith("tone curve:"))
    return dataclasses.replace(profile, tone_curve=None, saturation=None, notes=notes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked `gpu` without a CUDA GPU; torch is imported only when one is collected."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)


# --- a synthetic RAW folder and a tiny model, for the training, inference, model and eval tests -----


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
    import torch

    from rawback.model.config import preset
    from rawback.model.denoiser import RawbackModel
    from rawback.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_weights(RawbackModel(preset("tiny")), path)
    return path

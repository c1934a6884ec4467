"""Shared fixtures. Tests that need the team's real RAW files read them from ../shared/data and
skip cleanly when that folder is absent; everything else makes its own data."""

from __future__ import annotations

from pathlib import Path

import pytest

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

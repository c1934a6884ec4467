"""The camera's own white balance (its maker notes) in the camera RGB of the profile a photo is
converted with.

Maker notes give the gains the camera applied to *its* sensor's channels (rawback.io.makernotes).
When the profile is the photo's own camera (a user, built-in or library profile matched from the
EXIF) its neutral is the DNG's AsShotNeutral as it stands. When `--camera` forces another camera's
profile, the neutral is carried through XYZ: the white the photo's camera saw, seen by the chosen
camera. When the photo's camera is unknown (the generic profile) no matrix says what the gains
mean, and they are not used. docs/white-balance.md has the whole order of sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rawback.camera import ChosenProfile, ProfileSource
from rawback.io.makernotes import MakerNoteReading, as_shot_neutral


@dataclass(frozen=True)
class CameraWhite:
    """The camera's as-shot white in the profile's camera RGB, or None with the reason."""

    neutral: np.ndarray | None  # green = 1
    note: str  # what -v says: where it came from, or why it was not used


def camera_white(reading: MakerNoteReading, chosen: ChosenProfile, own: ChosenProfile) -> CameraWhite:
    """`reading`'s as-shot white in the colours of `chosen`, the profile the photo is converted
    with; `own` is the photo's own camera as its EXIF and maker notes name it (`chosen` itself
    unless --camera replaced it)."""
    as_shot = reading.as_shot
    if as_shot is None:
        return CameraWhite(None, "")
    neutral = as_shot_neutral(as_shot)
    said = f"white balance from maker notes ({as_shot.tag} = {as_shot.raw_value})"
    if chosen.source is ProfileSource.GENERIC:
        return CameraWhite(
            None, f"maker notes hold the as-shot white balance, but the camera is unknown: {said} not used"
        )
    if own.source is ProfileSource.GENERIC:
        return CameraWhite(
            None,
            f"maker notes hold the as-shot white balance of an unknown camera, which --camera "
            f"{chosen.profile.name} cannot translate: not used",
        )
    if own.profile.name == chosen.profile.name:
        return CameraWhite(neutral, said)
    white_xyz = np.linalg.solve(own.profile.rendering_matrix(), neutral)
    translated = chosen.profile.rendering_matrix() @ white_xyz
    if not np.all(np.isfinite(translated)) or np.any(translated <= 0):
        return CameraWhite(None, f"{said}: not used, it has no meaning in {chosen.profile.name}'s colours")
    return CameraWhite(translated / translated[1], f"{said}, carried into {chosen.profile.name}'s colours")

"""Open rawback's DNGs in independent raw developers (Debian packages; see docs/dng-layout.md).

Each test skips when its tool is not installed. The scene is a grey patch under a known light
with a red band at the top and a blue band at the bottom: grey must come out grey (the neutral,
matrix and levels agree) and red must stay red (the CFA pattern is not shifted or swapped).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image

from rawback.camera import CameraProfile
from rawback.io.dng import write_dng
from rawback.io.exif import ExifData
from rawback.isp import bayer, color

pytestmark = pytest.mark.external

NEUTRAL = np.array([0.45, 1.0, 0.70])  # a warm light: R and B far from green
GREY = 0.18
RED, BLUE = (0.6, 0.08, 0.08), (0.08, 0.08, 0.6)  # white-balanced camera RGB
SHAPE = (300, 400)  # 2x2 tiles, two of them partial
COMPRESSIONS = ["ljpeg", "none"]
TIMEOUT = 120  # seconds; darktable's first start is the slowest


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed")


PROFILE = CameraProfile(
    name="external-test",
    make="Testmaker",
    model="Sensor 1",
    cfa_pattern="GRBG",  # not RGGB, so a reader that ignores CFAPattern shows it
    black_level=(256, 256, 256, 256),
    white_level=16383,
    bits=14,
    color_matrix_1=(0.4716, 0.0603, -0.0830, -0.7798, 1.5474, 0.2480, -0.1496, 0.1937, 0.6651),
    illuminant_1=color.D65,
)


def scene_mosaic(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    balanced = np.full((*shape, 3), GREY)
    balanced[:40] = RED
    balanced[-40:] = BLUE
    camera_rgb = balanced * NEUTRAL  # what the sensor records under the light
    signal = bayer.mosaic_rgb(camera_rgb, PROFILE.cfa_pattern)
    black = PROFILE.black_level[0]
    return np.round(black + signal * (PROFILE.white_level - black)).astype(np.uint16)


@pytest.fixture(scope="module")
def mosaic() -> np.ndarray:
    return scene_mosaic()


@pytest.fixture(scope="module")
def dngs(tmp_path_factory: pytest.TempPathFactory, mosaic: np.ndarray) -> dict[str, Path]:
    """One DNG per compression, with a preview and EXIF/GPS like a real conversion."""
    folder = tmp_path_factory.mktemp("dng")
    preview = np.full((*SHAPE, 3), 118, np.uint8)  # sRGB 18 % grey
    exif = ExifData(
        make="GoPro",
        model="HERO7 Black",
        datetime="2024:05:01 12:34:56",
        exif={piexif.ExifIFD.ExposureTime: (1, 250), piexif.ExifIFD.ISOSpeedRatings: 200},
        gps={piexif.GPSIFD.GPSLatitudeRef: "N", piexif.GPSIFD.GPSLatitude: ((52, 1),) * 3},
    )
    out = {}
    for compression in COMPRESSIONS:
        path = folder / f"scene-{compression}.dng"
        write_dng(
            path,
            mosaic,
            sensor=PROFILE.dng_sensor(),
            as_shot_neutral=NEUTRAL,
            exif=exif,
            preview=preview,
            compression=compression,
        )
        out[compression] = path
    return out


@pytest.fixture(scope="module")
def rotated_dng(tmp_path_factory: pytest.TempPathFactory, mosaic: np.ndarray) -> Path:
    """The scene stored landscape with Orientation 6: to be shown rotated 90 degrees clockwise."""
    path = tmp_path_factory.mktemp("dng") / "rotated.dng"
    write_dng(path, mosaic, sensor=PROFILE.dng_sensor(), as_shot_neutral=NEUTRAL, orientation=6)
    return path


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, **kwargs)  # type: ignore[call-overload]


def run_darktable(dng: Path, out: Path, config: Path, sidecar: Path | None = None) -> None:
    """darktable-cli's render of `dng` to `out`, with a fresh `config` folder and no library (the
    way dng.md section 7 runs it); `sidecar`: an XMP whose history the render applies."""
    config.mkdir(exist_ok=True)
    extra = [str(sidecar)] if sidecar is not None else []
    cmd = ["darktable-cli", str(dng), *extra, str(out), "--core", "--configdir", str(config)]
    result = run([*cmd, "--library", ":memory:"])
    assert result.returncode == 0, result.stdout + result.stderr


def assert_rendered_scene(png: Path) -> None:
    """Grey patch neutral (not its brightness: each client has its own tone curve), red band red,
    blue band blue."""
    assert png.is_file(), f"{png.name} was not written"
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    h, w, _ = rgb.shape
    grey = rgb[int(h * 0.4) : int(h * 0.6), int(w * 0.3) : int(w * 0.7)].reshape(-1, 3).mean(0)
    red = rgb[10:25, int(w * 0.3) : int(w * 0.7)].reshape(-1, 3).mean(0)
    blue = rgb[-25:-10, int(w * 0.3) : int(w * 0.7)].reshape(-1, 3).mean(0)
    assert 20 < grey.mean() < 240, f"grey patch is {grey}: black or blown out"
    assert np.ptp(grey) <= 3, f"grey patch is {grey}: not neutral"
    assert red[0] > red[1] + 40 and red[0] > red[2] + 40, f"red band is {red}"
    assert blue[2] > blue[0] + 40 and blue[2] > blue[1] + 20, f"blue band is {blue}"


def assert_portrait_with_grey_centre(png: Path) -> None:
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    h, w, _ = rgb.shape
    assert h > w, f"Orientation 6 was ignored: {w}x{h}"
    centre = rgb[int(h * 0.4) : int(h * 0.6), int(w * 0.4) : int(w * 0.6)].reshape(-1, 3).mean(0)
    assert np.ptp(centre) <= 3, f"grey patch is {centre}: not neutral"
    right = rgb[int(h * 0.3) : int(h * 0.7), -25:-10].reshape(-1, 3).mean(0)
    assert right[0] > right[2] + 40, f"the red band (stored at the top) is not on the right: {right}"


def read_pgm(data: bytes) -> np.ndarray:
    """A binary PGM (P5) as written by `dcraw -4`: big-endian 16-bit samples."""
    match = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert match, f"not a PGM: {data[:20]!r}"
    width, height, maxval = (int(g) for g in match.groups())
    dtype = ">u2" if maxval > 255 else "u1"
    return np.frombuffer(data, dtype, count=width * height, offset=match.end()).reshape(height, width)


@needs("exiftool")
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_exiftool_validates_and_finds_exif_where_it_belongs(dngs: dict[str, Path], compression: str) -> None:
    path = dngs[compression]
    result = run(["exiftool", "-validate", "-warning", "-error", "-a", "-G1", str(path)])
    assert re.search(r"Validate\s*:\s*OK", result.stdout), result.stdout + result.stderr

    tags = run(["exiftool", "-a", "-G1", "-s", str(path)]).stdout
    assert re.search(r"\[ExifIFD\]\s+ExposureTime\s*:\s*1/250", tags), tags
    assert re.search(r"\[ExifIFD\]\s+ISO\s*:\s*200", tags), tags
    assert re.search(r"\[GPS\]\s+GPSLatitude\s*:", tags), tags
    assert re.search(r"\[IFD0\]\s+Make\s*:\s*rawback\n", tags), tags
    assert re.search(r"\[IFD0\]\s+Model\s*:\s*GoPro HERO7 Black\n", tags), tags
    assert re.search(r"\[SubIFD\]\s+CFAPattern2\s*:\s*1 0 2 1\n", tags), tags


@needs("dcraw")
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_dcraw_decodes_the_mosaic_bit_exactly(
    dngs: dict[str, Path], mosaic: np.ndarray, compression: str
) -> None:
    result = subprocess.run(
        ["dcraw", "-c", "-D", "-4", str(dngs[compression])], capture_output=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_pgm(result.stdout), mosaic)


@needs("darktable-cli")
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_darktable_renders_grey_as_grey(dngs: dict[str, Path], tmp_path: Path, compression: str) -> None:
    out = tmp_path / "out.png"
    run_darktable(dngs[compression], out, tmp_path / "config")
    assert_rendered_scene(out)


@needs("darktable-cli")
def test_darktable_opens_a_dng_whose_last_tile_column_is_one_pixel_wide(tmp_path: Path) -> None:
    """rawspeed refuses a lossless-JPEG tile with fewer visible columns than its 2 components
    ("Got less pixels than the components per sample"): widths 257, 513, 769... failed to open."""
    path = tmp_path / "w513.dng"
    write_dng(path, scene_mosaic((300, 513)), sensor=PROFILE.dng_sensor(), as_shot_neutral=NEUTRAL)
    out = tmp_path / "out.png"
    run_darktable(path, out, tmp_path / "config")
    assert_rendered_scene(out)


@needs("darktable-cli")
def test_darktable_applies_the_orientation(rotated_dng: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    run_darktable(rotated_dng, out, tmp_path / "config")
    assert_portrait_with_grey_centre(out)


@needs("rawtherapee-cli")
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_rawtherapee_renders_grey_as_grey(dngs: dict[str, Path], tmp_path: Path, compression: str) -> None:
    # RawTherapee exits 0 even when it cannot read the file, so only the pixels tell.
    out = tmp_path / "out.png"
    home = tmp_path / "home"
    home.mkdir()
    cmd = ["rawtherapee-cli", "-q", "-d", "-Y", "-n", "-o", str(out), "-c", str(dngs[compression])]
    result = run(cmd, env={**os.environ, "HOME": str(home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert_rendered_scene(out)


@needs("rawtherapee-cli")
def test_rawtherapee_applies_the_orientation(rotated_dng: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    home = tmp_path / "home"
    home.mkdir()
    cmd = ["rawtherapee-cli", "-q", "-d", "-Y", "-n", "-o", str(out), "-c", str(rotated_dng)]
    run(cmd, env={**os.environ, "HOME": str(home)})
    assert_portrait_with_grey_centre(out)


# --- Clipped highlights (rawback.isp.highlights; docs/dng-layout.md "Clipped highlights") -----------
#
# A photo with a blown sky, a lamp with a clipped core and a warm halo, and unclipped patches (one of
# them a red flower at 255 in red only), inverted by the analytic method. Its DNG is written at the
# as-shot white balance (daylight) and with the AsShotNeutral of an illuminant 2000 K hotter and one
# 2000 K cooler: a white-balance change in an editor is other multipliers over the same raw data.
# The blown areas must render neutral white at all three; the rest as it did without the change.

BLOWN_SHAPE = (240, 320)
BLOWN_REGIONS = {  # inner parts of each area, (rows, columns) of the photo
    "sky": (slice(10, 50), slice(20, 300)),
    "lamp": (slice(163, 177), slice(243, 257)),
    "grey": (slice(150, 180), slice(30, 60)),
    "red": (slice(150, 180), slice(90, 120)),
    "flower": (slice(205, 225), slice(30, 60)),
    "white": (slice(205, 225), slice(90, 120)),
}
CLIPPED, UNCLIPPED = ("sky", "lamp"), ("grey", "red", "flower", "white")
WHITE_BALANCES = {"as-shot": 0.0, "+2000 K": 2000.0, "-2000 K": -2000.0}


def blown_photo() -> np.ndarray:
    """sRGB in [0, 1], quantised to 8 bits like a JPEG's pixels."""
    h, w = BLOWN_SHAPE
    rng = np.random.default_rng(0)
    rgb = np.full((h, w, 3), 0.45)
    blue = np.array([0.45, 0.62, 0.9])
    for row in range(110):  # blown down to row 70, then fading to a blue sky
        rgb[row] = blue + (1 - blue) * min(1.0, (110 - row) / 40)
    rows, cols = np.mgrid[:h, :w]
    distance = np.hypot(rows - 170, cols - 250)
    halo = np.clip(1 - (distance - 18) / 25, 0, 1)[..., None]
    rgb = rgb * (1 - halo) + np.array([1.0, 0.7, 0.35]) * halo
    rgb[distance < 18] = 1.0
    rgb[140:190, 20:70] = 0.46  # 18 % grey
    rgb[140:190, 80:130] = (0.7, 0.15, 0.12)
    rgb[195:235, 20:70] = (1.0, 0.12, 0.10)  # a red flower: red at 255, not blown
    rgb[195:235, 80:130] = 0.85
    rgb = np.clip(rgb + rng.normal(0, 0.004, rgb.shape), 0, 1)
    return (np.rint(rgb * 255) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def blown_dngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """'after <white balance>': the DNGs rawback writes; 'before': the same mosaic without the
    highlights step (what rawback wrote before it), at the as-shot white balance."""
    from rawback.inverse import InverseRequest
    from rawback.isp.highlights import restore_clipping
    from rawback.isp.unprocess import neutral_for_illuminant, to_counts
    from rawback.methods import analytic

    folder = tmp_path_factory.mktemp("blown")
    photo = blown_photo()
    result = analytic(InverseRequest(rgb=photo, bit_depth=8, profile=PROFILE))
    highlights = restore_clipping(result.mosaic, photo)
    assert 0.15 < highlights.clipped < 0.35
    preview = np.rint(photo * 255).astype(np.uint8)
    mosaics = {"after": to_counts(highlights.mosaic, PROFILE), "before": to_counts(result.mosaic, PROFILE)}
    wanted = [("before", "as-shot"), *(("after", label) for label in WHITE_BALANCES)]
    out = {}
    for version, label in wanted:
        shift = WHITE_BALANCES[label]
        neutral = neutral_for_illuminant(PROFILE, 6504.0 + shift) if shift else result.neutral
        path = folder / f"{version}-{label.replace(' ', '')}.dng"
        # uncompressed: RawTherapee refuses files under 100 kB, and a flat blown sky compresses well
        write_dng(
            path, mosaics[version], sensor=PROFILE.dng_sensor(), as_shot_neutral=neutral,
            preview=preview, compression="none",
        )  # fmt: skip
        out[f"{version} {label}"] = path
    return out


def region_means(png: Path) -> dict[str, np.ndarray]:
    """Mean 8-bit RGB of each region; a client's output may lose a few pixels at each border."""
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    top, left = ((size - got) // 2 for size, got in zip(BLOWN_SHAPE, rgb.shape[:2], strict=True))
    return {
        name: rgb[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        .reshape(-1, 3)
        .mean(0)
        for name, (rows, cols) in BLOWN_REGIONS.items()
    }


def spread(rgb: np.ndarray) -> float:
    """Channel spread of a colour: (max - min) / max."""
    return float((rgb.max() - rgb.min()) / rgb.max())


def assert_blown_areas_neutral(means: dict[str, np.ndarray], what: str) -> None:
    for name in CLIPPED:
        assert spread(means[name]) < 0.03, f"{name} at {what} renders {means[name].round(1)}: not neutral"
        assert means[name].min() > 200, f"{name} at {what} renders {means[name].round(1)}: not white"
    flower = means["flower"]
    assert flower[0] > flower[1] + 100, f"the red flower at {what} renders {flower.round(1)}: not red"


def assert_unclipped_unchanged(means: dict[str, np.ndarray], before: dict[str, np.ndarray]) -> None:
    for name in UNCLIPPED:
        difference = np.abs(means[name] - before[name]).max()
        assert difference <= 1.0, f"{name}: {means[name].round(1)} now, {before[name].round(1)} before"


# darktable's highlight reconstruction mode, set through an XMP sidecar whose history holds only
# that module: the auto-applied modules (exposure, filmic) and the white balance stay the defaults.
DARKTABLE_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5"
 darktable:raw_params="0" darktable:auto_presets_applied="0" darktable:history_end="1"
 darktable:iop_order_version="2"><darktable:history><rdf:Seq>
<rdf:li darktable:num="0" darktable:operation="highlights" darktable:enabled="1" darktable:modversion="4"
 darktable:params="{params}" darktable:multi_name="" darktable:multi_priority="0"/>
</rdf:Seq></darktable:history></rdf:Description></rdf:RDF></x:xmpmeta>
"""
DARKTABLE_CLIP = 0  # "clip highlights" (4.2's default for raws is 5, "inpaint opposed")


def darktable_highlights_params(mode: int) -> str:
    """dt_iop_highlights_params_t version 4: mode, blendL, blendC, strength, clip, noise_level,
    iterations, scales, candidating, combine, recovery, solid_color (darktable's defaults)."""
    import struct

    return struct.pack("<ifffffiiffif", mode, 1.0, 0.0, 0.0, 1.0, 0.0, 1, 5, 0.4, 2.0, 0, 0.0).hex()


def render_darktable(dng: Path, folder: Path, mode: int | None = None) -> dict[str, np.ndarray]:
    """None: darktable's defaults; else that highlight reconstruction mode."""
    config = folder / f"config-{dng.stem}-{mode}"
    config.mkdir()
    out = config / "out.png"
    sidecar = None
    if mode is not None:
        sidecar = config / "sidecar.xmp"
        sidecar.write_text(DARKTABLE_SIDECAR.format(params=darktable_highlights_params(mode)))
    run_darktable(dng, out, config, sidecar)
    return region_means(out)


def render_rawtherapee(dng: Path, folder: Path) -> dict[str, np.ndarray]:
    """RawTherapee's default profile (highlight reconstruction "Blend") without its automatic
    chromatic-aberration correction, which fits one model to the whole image: a change anywhere
    then moves colours everywhere by a level or two, and unchanged areas could not be compared."""
    home = folder / f"home-{dng.stem}"
    home.mkdir()
    profile = home / "no-auto-ca.pp3"
    profile.write_text("[Version]\nAppVersion=5.9\nVersion=346\n\n[RAW]\nCA=false\n")
    out = home / "out.png"
    cmd = ["rawtherapee-cli", "-q", "-d", "-p", str(profile), "-Y", "-n", "-o", str(out), "-c", str(dng)]
    run(cmd, env={**os.environ, "HOME": str(home)})
    assert out.is_file(), f"RawTherapee wrote nothing for {dng.name}"
    return region_means(out)


@needs("rawtherapee-cli")
def test_rawtherapee_renders_blown_highlights_white_at_any_white_balance(
    blown_dngs: dict[str, Path], tmp_path: Path
) -> None:
    before = render_rawtherapee(blown_dngs["before as-shot"], tmp_path)
    for label in WHITE_BALANCES:
        means = render_rawtherapee(blown_dngs[f"after {label}"], tmp_path)
        assert_blown_areas_neutral(means, label)
        if label == "as-shot":
            assert_unclipped_unchanged(means, before)


@pytest.fixture(scope="module")
def blown_darktable(
    blown_dngs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, int | None], dict[str, np.ndarray]]:
    """darktable's renders of the blown photo, by (DNG, mode): its default (None) and "clip
    highlights" at each white balance, and the DNG without rawback's step at its default."""
    if shutil.which("darktable-cli") is None:
        pytest.skip("darktable-cli is not installed")
    folder = tmp_path_factory.mktemp("darktable")
    renders = {("before as-shot", None): render_darktable(blown_dngs["before as-shot"], folder)}
    for label in WHITE_BALANCES:
        for mode in (None, DARKTABLE_CLIP):
            renders[(f"after {label}", mode)] = render_darktable(blown_dngs[f"after {label}"], folder, mode)
    return renders


def test_darktable_clip_highlights_renders_blown_highlights_white_at_any_white_balance(
    blown_darktable: dict[tuple[str, int | None], dict[str, np.ndarray]],
) -> None:
    for label in WHITE_BALANCES:
        assert_blown_areas_neutral(blown_darktable[(f"after {label}", DARKTABLE_CLIP)], label)


def test_darktable_default_reconstruction_acts_on_blown_highlights(
    blown_darktable: dict[tuple[str, int | None], dict[str, np.ndarray]],
) -> None:
    """darktable 4.2's default mode, inpaint opposed, sees the blown areas as clipped and rebuilds
    them brighter than "clip highlights" does. It keeps each clipped site's own value and fills the
    others from their opposite channels, so a fully saturated area keeps a faint cast towards the
    channel with the largest white-balance gain (red): 1-7 % here, as in darktable issue #13849 on
    camera raws; without rawback's step the sky took the new white balance's colour (15-23 %)."""
    for label in WHITE_BALANCES:
        means = blown_darktable[(f"after {label}", None)]
        clipped = blown_darktable[(f"after {label}", DARKTABLE_CLIP)]
        for name in CLIPPED:
            assert means[name].mean() > clipped[name].mean() + 5, f"{name} at {label}: nothing rebuilt"
            assert spread(means[name]) < 0.08, f"{name} at {label} renders {means[name].round(1)}"
    assert_unclipped_unchanged(
        blown_darktable[("after as-shot", None)], blown_darktable[("before as-shot", None)]
    )


# --- the camera's real identity (docs/dng-layout.md, "Make and Model") ---------------------------

D90_MATRIX = (0.7309, -0.1403, -0.0519, -0.8474, 1.6008, 0.2622, -0.2434, 0.2826, 0.8064)  # LibRaw's


@pytest.fixture(scope="module")
def identity_pair(tmp_path_factory: pytest.TempPathFactory, mosaic: np.ndarray) -> tuple[Path, Path]:
    """The same Nikon D90 mosaic named as the camera and with Make "rawback"."""
    from dataclasses import replace

    from rawback.io.dng_identity import decide_identity

    folder = tmp_path_factory.mktemp("identity")
    profile = replace(PROFILE, name="libraw-nikon-d90", make="Nikon", model="D90", color_matrix_1=D90_MATRIX)
    exif = ExifData(make="NIKON CORPORATION", model="NIKON D90")
    paths = []
    for known in (True, False):
        identity = decide_identity(
            profile_is_known=known, profile_make=profile.make, profile_model=profile.model,
            profile_name=profile.name, exif_make=exif.make, exif_model=exif.model,
        )  # fmt: skip
        assert identity.is_real is known
        path = folder / f"{identity.make}.dng"
        preview = np.full((*SHAPE, 3), 118, np.uint8)
        write_dng(
            path, mosaic, sensor=profile.dng_sensor(), as_shot_neutral=NEUTRAL, exif=exif, preview=preview,
            identity=identity,
        )  # fmt: skip
        paths.append(path)
    return paths[0], paths[1]


def assert_same_render(real: Path, ours: Path) -> None:
    a = np.asarray(Image.open(real).convert("RGB"), dtype=np.float64)
    b = np.asarray(Image.open(ours).convert("RGB"), dtype=np.float64)
    assert a.shape == b.shape, f"the real identity changed the size: {a.shape} against {b.shape}"
    assert np.abs(a - b).mean() < 1.0, f"the real identity changed the render by {np.abs(a - b).mean():.1f}"
    h, w, _ = a.shape
    grey = a[int(h * 0.4) : int(h * 0.6), int(w * 0.3) : int(w * 0.7)].reshape(-1, 3).mean(0)
    assert 20 < grey.mean() < 240 and np.ptp(grey) <= 3, f"grey patch is {grey}"


@needs("darktable-cli")
def test_darktable_renders_a_known_camera_like_make_rawback(
    identity_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    outs = []
    for path in identity_pair:
        out = tmp_path / f"{path.stem}.png"
        run_darktable(path, out, tmp_path / f"{path.stem}-config")
        outs.append(out)
    assert_same_render(*outs)


@needs("rawtherapee-cli")
def test_rawtherapee_renders_a_known_camera_like_make_rawback(
    identity_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    outs = []
    for path in identity_pair:
        out, home = tmp_path / f"{path.stem}.png", tmp_path / f"{path.stem}-home"
        home.mkdir()
        cmd = ["rawtherapee-cli", "-q", "-d", "-Y", "-n", "-o", str(out), "-c", str(path)]
        run(cmd, env={**os.environ, "HOME": str(home)})
        outs.append(out)
    assert_same_render(*outs)

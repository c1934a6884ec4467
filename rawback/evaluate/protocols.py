"""Evaluation protocols: how the input photo is made from a RAW file and what is compared.

`protocols.md` (in the team's shared docs) gives each published protocol exactly; the docstrings
below say where we had to choose. Every protocol renders in *sensor orientation* (`user_flip=0`)
so that input pixels line up with the mosaic; files with a non-square pixel aspect (Kodak DC120)
are resampled back to the mosaic's geometry after LibRaw stretches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from PIL import Image

from rawback import metrics
from rawback.choices import Protocol as ProtocolName
from rawback.errors import InputError
from rawback.io.raw import CAMERA_WB_RENDER, RawImage, camera_wb_neutral, render_raw, to_mosaic_geometry
from rawback.isp.bayer import pack_rggb, per_site, rggb_crop, unpack_rggb

if TYPE_CHECKING:
    from rawback.camera import CameraProfile


@dataclass(frozen=True)
class PreparedInput:
    path: Path  # the input file the method reads, as a user's photo would be read
    input_rgb8: np.ndarray  # the decoded input at mosaic geometry, for masks and round trips
    neutral: np.ndarray  # the white balance of the input: given only to the oracle row
    upsample: int = 1  # the method sees the input enlarged by this factor (half-size inputs)
    # The RAW to score against when it is not the file's own: the file's RAW reduced to the
    # frame and size of an input of another size (camera JPEGs and previews, `raw_in_frame_of`).
    scored_raw: RawImage | None = None


class Protocol:
    """Base class: one way of turning a RAW file into an input photo and a score."""

    name: str = ""
    summary: str = ""
    transfer: str = "bt709"  # the transfer curve the render really used, given to the inverter
    render: ClassVar[dict[str, object]] = CAMERA_WB_RENDER
    round_trip: bool = False  # whether the round-trip sRGB PSNR is defined for this protocol

    jpeg_subsampling: int = 2  # Pillow's code: 2 = 4:2:0, 1 = 4:2:2, 0 = 4:4:4

    def make_input(self, raw: RawImage, folder: Path) -> PreparedInput:
        """Render with LibRaw and save as JPEG q90 with the RAW's EXIF, as a camera would."""
        h, w = raw.mosaic.shape
        render = render_raw(raw.path, **self.render)
        rgb = to_mosaic_geometry(render.rgb, h, w)
        path = folder / f"{raw.path.stem}.jpg"
        _save_jpeg(rgb, path, raw, subsampling=self.jpeg_subsampling)
        decoded = np.asarray(Image.open(path).convert("RGB"))
        return PreparedInput(path=path, input_rgb8=decoded, neutral=render.neutral)

    def ground_truth(self, raw: RawImage) -> np.ndarray:
        """Packed RGGB truth, normalised by the file's own levels (every protocol reports it)."""
        return pack_rggb(raw.normalized(), raw.pattern)

    def protocol_metrics(
        self, packed: np.ndarray, truth: np.ndarray, raw: RawImage, prepared: PreparedInput
    ) -> dict[str, float]:
        """Metrics only this protocol defines (patch-averaged published numbers)."""
        return {}


def _save_jpeg(rgb: np.ndarray, path: Path, raw: RawImage, *, subsampling: int, quality: int = 90) -> None:
    Image.fromarray(rgb).save(path, "JPEG", quality=quality, subsampling=subsampling, exif=_raw_exif(raw))


def _save_png(rgb: np.ndarray, folder: Path, stem: str, exif: bytes | None, icc: bytes | None = None) -> Path:
    """An input that must not be compressed again (resampled, cut, or a bitmap) as lossless PNG,
    keeping the EXIF and colour profile the photo had: the method reads its LightSource and
    exposure, and decodes its colours, as from the user's own file."""
    path = folder / f"{stem}.png"
    extra = {key: value for key, value in (("exif", exif), ("icc_profile", icc)) if value}
    Image.fromarray(rgb).save(path, "PNG", **extra)
    return path


def _raw_exif(raw: RawImage) -> bytes:
    """The RAW's capture EXIF as an APP1 payload, for a render saved as the method's input."""
    from rawback.io.exif import exif_from_raw, to_jpeg_exif

    return to_jpeg_exif(exif_from_raw(raw))


class RawbackProtocol(Protocol):
    name = ProtocolName.RAWBACK.value
    summary = (
        "full images; input = LibRaw render (camera WB, no auto-brightening, sRGB, 8-bit) saved as JPEG "
        "q90 4:2:0 with EXIF; the model never sees the as-shot white balance"
    )
    round_trip = True


class PairsProtocol(RawbackProtocol):
    """The camera's own JPEGs (from `--pairs DIR`) as inputs, scored like "rawback".

    A JPEG of the mosaic's size is used as it is. A camera JPEG of another size (cameras leave out
    a few border pixels of the sensor, or save smaller JPEGs) is scored as `camera-preview` scores a
    preview: against the RAW reduced to the JPEG's frame and size, found by alignment. Stretching
    it onto the mosaic instead misregistered its edges by as much as the border left out."""

    name = "pairs"
    summary = "the camera's own JPEG as input (sRGB curve), matched to each RAW by file name"
    transfer = "srgb"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find(self, raw: RawImage) -> Path:
        for candidate in sorted(self.folder.rglob("*")):
            if candidate.stem == raw.path.stem and candidate.suffix.lower() in {".jpg", ".jpeg"}:
                return candidate
        raise InputError(raw.path, f"no paired JPEG named {raw.path.stem}.jpg in {self.folder}")

    def make_input(self, raw: RawImage, folder: Path) -> PreparedInput:
        source = self.find(raw)
        rgb = np.asarray(Image.open(source).convert("RGB"))
        # The camera's JPEG engine used its as-shot white balance.
        neutral = raw.effective_neutral
        h, w = raw.mosaic.shape
        if rgb.shape[:2] == (h, w):
            return PreparedInput(path=source, input_rgb8=rgb, neutral=neutral)
        if (rgb.shape[0] > rgb.shape[1]) != (h > w):
            raise InputError(source, "paired JPEG is rotated relative to the RAW mosaic")
        try:
            scored, cut = raw_in_frame_of(raw, rgb, source, "paired JPEG")
        except InputError:
            # Another aspect ratio: non-square pixels (LibRaw stretches such frames), resampled.
            scored, cut = None, to_mosaic_geometry(rgb, h, w)
        if cut.shape != rgb.shape:  # resampled or cut to whole 2x2 blocks: saved losslessly
            with Image.open(source) as camera_jpeg:
                exif, icc = camera_jpeg.info.get("exif"), camera_jpeg.info.get("icc_profile")
            source = _save_png(cut, folder, raw.path.stem, exif, icc)
        return PreparedInput(path=source, input_rgb8=cut, neutral=neutral, scored_raw=scored)


class RawDiffusionProtocol(Protocol):
    """Reinders et al., WACV 2025 (SonyResearch/RAW-Diffusion).

    Input: `postprocess()` with rawpy defaults (daylight WB, auto-brightening, AHD), half size by
    area averaging, lossless PNG. We first crop the render to the RGGB phase of the mosaic so each
    averaged 2x2 block is exactly one packed pixel (their FiveK cameras are RGGB, where this crop is
    a no-op). The method sees the half-size input enlarged 2x (nearest), and the score is PSNR and
    SSIM over (R, mean G, B) on a 3x3 grid of patches, averaged.
    """

    name = ProtocolName.RAW_DIFFUSION.value
    summary = "rawpy default render (daylight WB, auto-bright), half size, PNG; 3x3 patches, (R, G, B)"
    render: ClassVar[dict[str, object]] = dict(output_bps=8, user_flip=0)

    def make_input(self, raw: RawImage, folder: Path) -> PreparedInput:
        h, w = raw.mosaic.shape
        render = render_raw(raw.path, **self.render)
        rgb = to_mosaic_geometry(render.rgb, h, w)
        rows, cols = rggb_crop(h, w, raw.pattern)
        cropped = rgb[rows, cols].astype(np.float64)
        half = cropped.reshape(cropped.shape[0] // 2, 2, cropped.shape[1] // 2, 2, 3).mean(axis=(1, 3))
        half8 = np.clip(np.rint(half), 0, 255).astype(np.uint8)
        # Their protocol's PNG carries no EXIF.
        path = _save_png(half8, folder, raw.path.stem, exif=None)
        return PreparedInput(path=path, input_rgb8=half8, neutral=render.neutral, upsample=2)

    def protocol_metrics(
        self, packed: np.ndarray, truth: np.ndarray, raw: RawImage, prepared: PreparedInput
    ) -> dict[str, float]:
        pred = metrics.three_channel(packed)
        true = metrics.three_channel(truth)
        scores = [
            (metrics.psnr(pred[r, c], true[r, c]), metrics.ssim(pred[r, c], true[r, c]))
            for r, c in metrics.grid_patches(*true.shape[:2])
        ]
        return {
            "protocol_psnr": float(np.mean([s[0] for s in scores])),
            "protocol_ssim": float(np.mean([s[1] for s in scores])),
        }


class InvertibleIspProtocol(Protocol):
    """Xing et al., CVPR 2021 (yzxing87/Invertible-ISP).

    Input: `postprocess(use_camera_wb=True, no_auto_bright=True)` saved as JPEG q90 4:2:2. Truth:
    the visible mosaic (black NOT subtracted, as in their code), bilinear-demosaicked, times the
    camera white-balance gains over their maximum, to the power 1/2.2, divided by
    white_level^(1/2.2); the prediction goes through the same transform. PSNR over the 3-channel
    image on a 3x3 grid of patches, averaged.
    """

    name = ProtocolName.INVERTIBLE_ISP.value
    summary = "camera-WB render as JPEG q90 4:2:2; bilinear, WB, gamma 1/2.2 truth; 3x3 patches"
    render: ClassVar[dict[str, object]] = dict(
        use_camera_wb=True, no_auto_bright=True, output_bps=8, user_flip=0
    )
    jpeg_subsampling = 1  # 4:2:2, as their test script saves it

    def _their_space(self, counts: np.ndarray, raw: RawImage, neutral: np.ndarray) -> np.ndarray:
        gains = 1.0 / neutral
        gains = gains / gains.max()
        rgb = metrics.bilinear_demosaic(counts, "RGGB") * gains
        return np.clip(rgb, 0, None) ** (1 / 2.2) / raw.white_level ** (1 / 2.2)

    def protocol_metrics(
        self, packed: np.ndarray, truth: np.ndarray, raw: RawImage, prepared: PreparedInput
    ) -> dict[str, float]:
        # Both sides on the RGGB-phase crop of the mosaic, back in raw counts (black included).
        h, w = raw.mosaic.shape
        rows, cols = rggb_crop(h, w, raw.pattern)
        black = per_site(raw.black_level, h, w)[rows, cols]
        scale = raw.white_level - black
        pred = self._their_space(unpack_rggb(packed) * scale + black, raw, prepared.neutral)
        true = self._their_space(raw.mosaic[rows, cols].astype(np.float64), raw, prepared.neutral)
        scores = [metrics.psnr(pred[r, c], true[r, c]) for r, c in metrics.grid_patches(*true.shape[:2])]
        return {"protocol_psnr": float(np.mean(scores))}


class FinishedProtocol(Protocol):
    """A camera-like finished photo of our own design, unlike any member of the training simulator.

    From LibRaw's linear AHD demosaic (`read_linear_rgb`, already at mosaic geometry):

    1. white balance with the neutral LibRaw applies for `use_camera_wb=True` (read back from a
       camera-WB render, as `render_raw` does) and clip at 1, as LibRaw does;
    2. the camera matrix to linear sRGB (the profile extracted from the file), clipped to [0, 1];
    3. an exposure lift of +0.5 stop: x = sqrt(2) * rgb, so 0 <= x <= sqrt(2);
    4. Hable's filmic curve (the "Uncharted 2" operator) with exposure bias 2, white at sqrt(2):
           H(v) = (v (A v + C B) + D E) / (v (A v + B) + D F) - E / F,
           A, B, C, D, E, F = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30,
           y = H(2 x) / H(2 sqrt(2))
       a toe that deepens shadows and a shoulder that rolls highlights off into white;
    5. saturation x1.25 about linear Rec. 709 luminance, clipped to [0, 1];
    6. sRGB encoding, then an unsharp mask of every channel (Gaussian sigma 1 px, amount 0.6);
    7. 8 bits, JPEG quality 85 with 4:2:0 chroma and the RAW's EXIF.

    The analytic inverse is given the sRGB curve; the round trip is not defined (LibRaw cannot
    reproduce this finish).
    """

    name = ProtocolName.FINISHED.value
    summary = (
        "camera-like finish of LibRaw's linear demosaic: camera WB, +0.5 EV, Hable filmic curve, "
        "saturation 1.25, sharpening, sRGB; JPEG q85 4:2:0 with EXIF"
    )
    transfer = "srgb"
    jpeg_quality = 85
    exposure_stops = 0.5
    saturation = 1.25
    sharpen_sigma = 1.0
    sharpen_amount = 0.6
    filmic_bias = 2.0

    def make_input(self, raw: RawImage, folder: Path) -> PreparedInput:
        from rawback.camera import profile_from_raw_image
        from rawback.io.raw import read_linear_rgb

        neutral = camera_wb_neutral(raw.path)
        linear = read_linear_rgb(raw.path).rgb
        rgb8 = self.finish(linear, profile_from_raw_image(raw), neutral)
        path = folder / f"{raw.path.stem}.jpg"
        _save_jpeg(rgb8, path, raw, subsampling=self.jpeg_subsampling, quality=self.jpeg_quality)
        decoded = np.asarray(Image.open(path).convert("RGB"))
        return PreparedInput(path=path, input_rgb8=decoded, neutral=neutral)

    def finish(self, camera_rgb: np.ndarray, profile: CameraProfile, neutral: np.ndarray) -> np.ndarray:
        """Steps 1-6 of the class docstring: linear camera RGB (H, W, 3) -> uint8 sRGB."""
        from scipy import ndimage

        from rawback.isp.color import LUMA_709, linear_to_srgb
        from rawback.isp.simulate import camera_to_linear_srgb

        lin = camera_to_linear_srgb(camera_rgb, profile, neutral)  # steps 1-2, as LibRaw does them
        peak = 2.0**self.exposure_stops
        lin = _hable(self.filmic_bias * peak * lin) / _hable(self.filmic_bias * peak)
        luma = (lin @ LUMA_709)[..., None]
        lin = np.clip(luma + self.saturation * (lin - luma), 0.0, 1.0)
        enc = linear_to_srgb(lin)
        blurred = ndimage.gaussian_filter(enc, sigma=(self.sharpen_sigma, self.sharpen_sigma, 0.0))
        enc = enc + self.sharpen_amount * (enc - blurred)
        return np.rint(np.clip(enc, 0.0, 1.0) * 255.0).astype(np.uint8)


def raw_in_frame_of(raw: RawImage, rgb: np.ndarray, source: Path, what: str) -> tuple[RawImage, np.ndarray]:
    """A camera's picture of a shot (uint8 RGB, the RAW's orientation, any size) and the RAW
    reduced to its frame and size: the part of the RAW's frame the picture shows is found as
    `rawback profile curve` finds it, each packed CFA plane is area-averaged onto half the
    picture's size, and the result is mosaicked again as RGGB. The picture comes back cut to whole
    2x2 blocks. Raises InputError when the picture is turned or not the RAW's frame."""
    import dataclasses

    from rawback.camera import profile_from_raw_image
    from rawback.framing import ASPECT_TOLERANCE, developed_raw, frame_margins
    from rawback.isp.color import srgb_to_linear

    ph, pw = rgb.shape[:2]
    h, w = raw.mosaic.shape
    if abs((pw / ph) / (w / h) - 1.0) > ASPECT_TOLERANCE:
        raise InputError(source, f"{what} ({pw}x{ph}) is turned or not the RAW's frame ({w}x{h})")
    rgb = rgb[: ph - ph % 2, : pw - pw % 2]
    linear = developed_raw(raw.path, profile_from_raw_image(raw))
    left, top, right, bottom = frame_margins(linear, srgb_to_linear(rgb.astype(np.float32) / 255.0))
    packed = pack_rggb(raw.normalized(), raw.pattern)  # R, G1, G2, B planes at half size
    # The packed planes of a phase other than RGGB, or of odd sides, are a row or column short of
    # half the mosaic: the box stays inside them.
    box = (left / 2, top / 2, min((w - right) / 2, packed.shape[1]), min((h - bottom) / 2, packed.shape[0]))
    size = (rgb.shape[1] // 2, rgb.shape[0] // 2)
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(packed[..., c])).resize(size, Image.Resampling.BOX, box=box)
        )
        for c in range(4)
    ]
    mosaic = np.empty(rgb.shape[:2], dtype=np.float32)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = planes
    # 16-bit counts from black 0: the averaged values keep far more precision than the sensor's.
    counts = np.rint(np.clip(mosaic, 0.0, 1.0) * 65535.0).astype(np.uint16)
    reduced = dataclasses.replace(
        raw, mosaic=counts, pattern="RGGB", black_level=(0.0,) * 4, white_level=65535
    )
    return reduced, rgb


class CameraPreviewProtocol(Protocol):
    """Real camera JPEGs: the preview a camera's own engine rendered and embedded in the RAW.

    Most cameras embed in each RAW file a picture of the shot made by their JPEG engine, in the
    picture style of the shot: a JPEG (Canon's CRWs a 640x480 one, most recent cameras a large
    one, often full size) or a small RGB bitmap (256x192 in the GoPro DNGs of ../shared/data,
    rendered by their converter, not the camera). It is the
    input as the camera wrote it: a JPEG keeps its bytes (the RAW's EXIF is added), a bitmap is
    saved as PNG. The truth is the RAW reduced to the preview's frame and size: the part of the
    RAW's frame the preview shows is found as `rawback profile curve` finds it, each of the four
    packed CFA planes is area-averaged onto half the preview's size, and the result is mosaicked
    again as RGGB at the preview's size. The analytic inverse is given the sRGB curve and, in the
    oracle row, the white balance the camera recorded. RAWs whose preview is missing, blank or
    stored turned are errors (so are the Kodaks' in our data, whose previews have square pixels
    where the RAW has not). The round trip is not defined (LibRaw cannot reproduce the camera's
    rendering). A DNG made by a converter carries the converter's rendering, not the camera's.
    """

    name = ProtocolName.CAMERA_PREVIEW.value
    summary = (
        "the camera's own JPEG engine: the preview embedded in the RAW file, as the camera wrote it; "
        "truth = the RAW area-averaged to the preview's frame and size"
    )
    transfer = "srgb"

    def make_input(self, raw: RawImage, folder: Path) -> PreparedInput:
        import piexif

        from rawback.io.raw import embedded_preview

        embedded = embedded_preview(raw.path)
        scored, preview = raw_in_frame_of(raw, embedded.rgb, raw.path, "its embedded preview")
        if embedded.jpeg is None or preview.shape != embedded.rgb.shape:
            # A bitmap preview, or one of odd size (its last row or column left out): lossless PNG.
            path = _save_png(preview, folder, raw.path.stem, _raw_exif(raw))
        else:
            path = folder / f"{raw.path.stem}.jpg"
            piexif.insert(_raw_exif(raw), embedded.jpeg, str(path))
        # The camera's JPEG engine used its as-shot white balance.
        return PreparedInput(path=path, input_rgb8=preview, neutral=raw.effective_neutral, scored_raw=scored)


def _hable(v: np.ndarray | float) -> np.ndarray:
    """John Hable's filmic curve (Uncharted 2, 2010), before normalisation to its white point."""
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    v = np.asarray(v, dtype=np.float32)
    return (v * (a * v + c * b) + d * e) / (v * (a * v + b) + d * f) - e / f


PROTOCOLS: dict[str, type[Protocol]] = {
    ProtocolName.RAWBACK: RawbackProtocol,
    ProtocolName.RAW_DIFFUSION: RawDiffusionProtocol,
    ProtocolName.INVERTIBLE_ISP: InvertibleIspProtocol,
    ProtocolName.FINISHED: FinishedProtocol,
    ProtocolName.CAMERA_PREVIEW: CameraPreviewProtocol,
}


def get_protocol(name: str, pairs: Path | None = None) -> Protocol:
    if pairs is not None:
        if name != ProtocolName.RAWBACK:
            raise ValueError("--pairs replaces the rendered input of the 'rawback' protocol only")
        return PairsProtocol(pairs)
    try:
        return PROTOCOLS[name]()
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; available: {', '.join(PROTOCOLS)}") from None

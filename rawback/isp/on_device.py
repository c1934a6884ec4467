"""The per-pixel steps around the network in torch, for a photo converted on a GPU.

On a GPU the network is a fraction of a 24 MP conversion; the host's per-pixel NumPy work around it
is not (24 MP on the 2-core EPYC, docs/experiments.md: the analytic prior 1.08 s; the
packed-to-CFA placement, the reconstructed-site mask, highlight restoration and quantisation
0.39-0.49 s). Here they run where the photo already is, and only the uint16 raw counts come back
(half the bytes of the float mosaic).

Each function gives the same bits as its NumPy form in rawback.isp (tested on the CPU, and on CUDA
by the tests marked `gpu`), so a GPU conversion differs from a CPU one only by the network. What
that takes: elementwise operations in NumPy's order, one kernel each (PyTorch's eager kernels round
every result to float32, as NumPy does, so nothing is fused into an FMA); three-term dot products
written out rather than a matmul (cuBLAS may fuse or reorder); table look-ups on the same integer
codes; divisions by a tensor on the device (CUDA turns a division by a CPU scalar into a
multiplication by its reciprocal, which rounds differently).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rawback.camera import CameraProfile
from rawback.isp.bayer import channel_index, rggb_offset
from rawback.isp.color import LUMA_709
from rawback.isp.unprocess import UnprocessSettings, linear_tables, raw_from_srgb_matrix


def unprocess_packed(
    photo: Tensor,
    profile: CameraProfile,
    neutral: np.ndarray,
    settings: UnprocessSettings,
    *,
    bit_depth: int = 8,
    curve: np.ndarray | None = None,
    saturation: float = 1.0,
) -> Tensor:
    """rawback.isp.unprocess.unprocess of an RGGB-phase photo, packed: (3, H, W) sRGB-encoded in
    [0, 1] on any device -> (4, H/2, W/2) float32 R, G1, G2, B planes in [0, 1] on that device,
    bit for bit `pack_rggb(unprocess(...), "RGGB")` with `profile` taken as RGGB."""
    _, height, width = photo.shape
    if height % 2 or width % 2:
        raise ValueError(f"an RGGB-phase photo has an even size, got {height}x{width}")
    device = photo.device
    tables = linear_tables(settings, bit_depth, curve, saturation)
    table = torch.from_numpy(tables.table).to(device)
    curve_table = None if tables.curve_table is None else torch.from_numpy(tables.curve_table).to(device)
    saturation_t = torch.tensor(tables.saturation, dtype=torch.float32, device=device)
    raw_from_srgb = raw_from_srgb_matrix(profile, neutral).astype(np.float32)
    sites = channel_index("RGGB")
    out = torch.empty((4, height // 2, width // 2), dtype=torch.float32, device=device)
    for dy in (0, 1):
        for dx in (0, 1):
            codes = torch.round(photo[:, dy::2, dx::2].float() * (tables.levels - 1))
            lin = table[codes.clamp_(0, tables.levels - 1).long()]  # (3, h, w) linear sRGB
            if tables.saturation != 1.0:
                luma = _dot3(lin, LUMA_709)
                lin = torch.clamp(luma + torch.div(lin - luma, saturation_t), 0.0, 1.0)
                if curve_table is not None:
                    lin = curve_table[torch.round(lin * (len(curve_table) - 1)).long()]
            out[2 * dy + dx] = _dot3(lin, raw_from_srgb[sites[dy, dx]]).clamp_(0.0, 1.0)
    return out


def _dot3(planes: Tensor, weights: np.ndarray) -> Tensor:
    """(3, h, w) . (3,) float32 as NumPy's `(h, w, 3) @ (3,)` sums it: left to right, each
    product and sum rounded to float32."""
    w0, w1, w2 = (float(np.float32(v)) for v in weights)
    return planes[0] * w0 + planes[1] * w1 + planes[2] * w2


def packed_to_pattern(packed: Tensor, pattern: str, height: int, width: int) -> Tensor:
    """rawback.isp.bayer.packed_to_pattern for a (h, w, 4) float tensor -> (H, W) on its device.
    Replicating each packed plane by one site is the NumPy form's phase-preserving two-pixel pad."""
    dy, dx = rggb_offset(pattern)
    planes = F.pad(packed.permute(2, 0, 1)[None], (1, 1, 1, 1), mode="replicate")
    padded = F.pixel_shuffle(planes, 2)[0, 0]  # channel 2 * dy + dx lands at (dy, dx) of each quad
    top, left = 2 - dy, 2 - dx
    out = padded[top : top + height, left : left + width]
    if tuple(out.shape) != (height, width):
        raise ValueError(f"packed prediction {tuple(packed.shape)} too small for a {height}x{width} mosaic")
    return out


def to_counts(normalised: Tensor, profile: CameraProfile) -> Tensor:
    """rawback.isp.unprocess.to_counts on the tensor's device: (H, W) float32 -> uint16 counts."""
    height, width = normalised.shape
    block = torch.tensor(profile.black_level, dtype=torch.float32, device=normalised.device).reshape(2, 2)
    black = block.repeat((height + 1) // 2, (width + 1) // 2)[:height, :width]
    counts = black + normalised * (profile.white_level - black)
    return torch.round(counts).clamp_(0, profile.white_level).to(torch.uint16)

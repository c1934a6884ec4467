"""A learned method's mosaic left on its GPU, so that `convert` restores the highlights and
quantises to raw counts there and downloads uint16 counts, not the float mosaic.

The float mosaic is what `eval` scores and what the NumPy path edits (rawback.isp.highlights,
rawback.isp.unprocess.to_counts); `to_host` gives exactly that. `raw_counts` gives the same counts
and notes as those two functions on the host (rawback.isp.on_device keeps the bits): only the
photo's blown areas are found on the host, because they are connected areas grown from seeds, a
labelling a GPU does poorly, and the photo is on the host anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rawback.camera import CameraProfile
from rawback.isp import on_device
from rawback.isp.highlights import Highlights, clipped_sites
from rawback.network import TileNetwork


@dataclass(frozen=True)
class DeviceMosaic:
    packed: Tensor  # (h, w, 4) float32 prediction in [0, 1] on the device, RGGB-phase crop of the photo
    # (h, w, 4) bool: sites the method lifted above the analytic prior (rawback.inverse.InverseResult's
    # `reconstructed`, packed); None: none
    lifted: Tensor | None
    pattern: str  # the profile's CFA
    height: int
    width: int
    network: TileNetwork  # its pinned host buffers carry the copies

    def _on_device(self) -> tuple[Tensor, Tensor | None]:
        """The (H, W) mosaic of the profile's CFA and the (H, W) bool reconstructed sites."""
        mosaic = on_device.packed_to_pattern(self.packed, self.pattern, self.height, self.width)
        if self.lifted is None:
            return mosaic, None
        lifted = on_device.packed_to_pattern(self.lifted.float(), self.pattern, self.height, self.width)
        return mosaic, lifted > 0.5

    def to_host(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The float mosaic and the reconstructed sites as the method's host path gives them."""
        mosaic, reconstructed = self._on_device()
        host = self.network.download(mosaic.contiguous()).numpy()
        return host, None if reconstructed is None else self.network.download(reconstructed).numpy()

    def raw_counts(self, rgb: np.ndarray, profile: CameraProfile) -> tuple[np.ndarray, Highlights]:
        """rawback.isp.highlights.restore_clipping then rawback.isp.unprocess.to_counts, on the
        device: (H, W) uint16 counts on the host, and what the restoration did (its mosaic None)."""
        mosaic, reconstructed = self._on_device()
        clipped_host = clipped_sites(rgb)
        clipped_fraction = kept = 0.0
        if clipped_host is not None:
            clipped_count = np.count_nonzero(clipped_host)
            clipped_fraction = clipped_count / clipped_host.size
            clipped = self.network.upload(torch.from_numpy(clipped_host))
            to_white = clipped if reconstructed is None else clipped & ~reconstructed
            kept = 1.0 - int(torch.count_nonzero(to_white)) / clipped_count
            mosaic = mosaic.masked_fill(to_white, 1.0)
        counts = self.network.download(on_device.to_counts(mosaic, profile)).numpy()
        return counts, Highlights(None, clipped_fraction, kept)

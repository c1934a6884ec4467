"""The Invertible-ISP flow (Xing, Qian and Chen, CVPR 2021), shrunk to train on a CPU.

A stack of invertible blocks maps a scene-linear sRGB image L (the RAW side, see
rawback.train.invisp_kind) to the finished photo: `model(L)` is the forward ISP and
`model.inverse(photo)` the exact inverse, the RGB -> RAW direction rawback uses. The image is first
squeezed (each 2x2 block of pixels to 12 channels at half resolution), then each block is

    an invertible 1x1 convolution (a learned 12x12 channel mixing, Glow), then an affine coupling:
    x1, x2 = the first third of the channels, the other two thirds
    y1 = x1 + F(x2)
    y2 = x2 * exp(s(y1)) + G(y1),   s = clamp * tanh(H(y1))   (bounded scale, as the paper)

and the inverse runs the same steps backwards: x2 = (y2 - G(y1)) * exp(-s(y1)), x1 = y1 - F(x2),
then the inverse matrix. F, G and H are small dense blocks (each convolution sees every earlier
feature map); G and H share one subnet with two output halves.

Shrunk from the paper (8 blocks at full resolution on 3 channels, dense subnets of 32 channels,
three separate subnets): the squeeze (an exact permutation, as Glow does) halves the resolution the
subnets run at, and the 8 blocks have subnets of `width` channels and `convs` hidden convolutions,
G and H merged: a training step on one CPU core takes about a second (docs/invisp.md has the
measurements).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

COLOURS = 3  # the flow maps RGB to RGB
SQUEEZE = 2  # each 2x2 block of pixels becomes one position of 4 * COLOURS channels
CHANNELS = COLOURS * SQUEEZE**2
SPLIT = CHANNELS // 3  # channels of the first coupling half (the paper's 1 of 3); the second has the rest


@dataclass(frozen=True)
class FlowConfig:
    blocks: int = 8
    width: int = 16  # channels each dense-block convolution adds
    convs: int = 1  # 3x3 convolutions per dense block before its output convolution
    clamp: float = 1.0  # bound of the coupling's log-scale

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FlowConfig:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        config = cls(**known)
        if not (1 <= config.blocks <= 64 and 1 <= config.width <= 256 and 1 <= config.convs <= 16):
            raise ValueError(f"flow sizes out of range: {config}")
        if not 0.0 < config.clamp <= 10.0:
            raise ValueError(f"flow clamp out of range: {config.clamp}")
        return config


class DenseBlock(nn.Module):
    """3x3 convolutions whose inputs are the block input and every earlier output (DenseNet), then
    a 3x3 output convolution initialised to zero so that a new coupling is the identity."""

    def __init__(self, inputs: int, outputs: int, width: int, convs: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(inputs + i * width, width, 3, padding=1) for i in range(convs))
        self.out = nn.Conv2d(inputs + convs * width, outputs, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        features = x
        for layer in self.layers:
            features = torch.cat([features, functional.leaky_relu(layer(features), 0.2)], dim=1)
        return self.out(features)


class InvertibleConv1x1(nn.Module):
    """A learned channel mixing y = W x; its inverse applies W^-1, computed in float64.

    W starts as a cyclic shift of the channels by `shift` (Glow starts from a random rotation):
    each coupling then splits off another channel, and with shifts that add up to a multiple of 3
    a new flow is exactly the identity, a far better start for a short CPU training than a rotated
    image."""

    def __init__(self, channels: int, shift: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.eye(channels).roll(shift, dims=0))

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("ij,bjhw->bihw", self.weight.to(x.dtype), x)

    def inverse(self, y: Tensor) -> Tensor:
        inverse = torch.linalg.inv(self.weight.double()).to(y.dtype)
        return torch.einsum("ij,bjhw->bihw", inverse, y)


class CouplingBlock(nn.Module):
    def __init__(self, config: FlowConfig, shift: int) -> None:
        super().__init__()
        rest = CHANNELS - SPLIT
        self.mix = InvertibleConv1x1(CHANNELS, shift)
        self.f = DenseBlock(rest, SPLIT, config.width, config.convs)
        self.gh = DenseBlock(SPLIT, 2 * rest, config.width, config.convs)  # G and H, one subnet
        self.clamp = config.clamp

    def _shift_scale(self, y1: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw_scale = self.gh(y1).chunk(2, dim=1)
        return shift, self.clamp * torch.tanh(raw_scale)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mix(x)
        x1, x2 = x[:, :SPLIT], x[:, SPLIT:]
        y1 = x1 + self.f(x2)
        shift, log_scale = self._shift_scale(y1)
        y2 = x2 * torch.exp(log_scale) + shift
        return torch.cat([y1, y2], dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y1, y2 = y[:, :SPLIT], y[:, SPLIT:]
        shift, log_scale = self._shift_scale(y1)
        x2 = (y2 - shift) * torch.exp(-log_scale)
        x1 = y1 - self.f(x2)
        return self.mix.inverse(torch.cat([x1, x2], dim=1))


class InvertibleIsp(nn.Module):
    """forward: scene-linear sRGB (N, 3, H, W) -> photo (N, 3, H, W), sRGB-encoded in [0, 1]
    (unclamped: the loss clamps where a photo is stored); inverse: photo -> scene-linear sRGB.
    Fully convolutional with 3x3 receptive steps: any image size, and tiles agree away from their
    borders (rawback.invisp_inference)."""

    def __init__(self, config: FlowConfig = FlowConfig()) -> None:
        super().__init__()
        self.config = config
        # Shifts of one coupling half, the last block's chosen so that they add up to a multiple of
        # the channels: every block splits off another third, and the stack starts as the identity.
        shifts = [SPLIT] * (config.blocks - 1)
        shifts.append(-sum(shifts) % CHANNELS)
        self.blocks = nn.ModuleList(CouplingBlock(config, shift) for shift in shifts)

    def forward(self, linear: Tensor) -> Tensor:
        _check_even(linear)
        x = functional.pixel_unshuffle(linear, SQUEEZE)
        for block in self.blocks:
            x = block(x)
        return functional.pixel_shuffle(x, SQUEEZE)

    def inverse(self, photo: Tensor) -> Tensor:
        _check_even(photo)
        x = functional.pixel_unshuffle(photo, SQUEEZE)
        for block in reversed(self.blocks):
            x = block.inverse(x)
        return functional.pixel_shuffle(x, SQUEEZE)

    def receptive_radius(self) -> int:
        """Pixels of context one output pixel depends on, each side, in either direction: every
        3x3 convolution adds one squeezed position (SQUEEZE pixels)."""
        per_subnet = self.config.convs + 1
        return self.config.blocks * 2 * per_subnet * SQUEEZE


def _check_even(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != COLOURS or x.shape[2] % SQUEEZE or x.shape[3] % SQUEEZE:
        raise ValueError(f"the flow takes (N, 3, H, W) with H and W even, got {tuple(x.shape)}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""Every enumerated option of rawback, and the defaults that more than one module needs, defined once.

No numpy or torch here: the CLI builds its option types from these classes (so `--help` stays
instant), and the modules that implement a choice key their tables by these members
(rawback.sampling.SAMPLERS, rawback.isp.color.TRANSFER_CURVES, rawback.evaluate.protocols.PROTOCOLS),
so each name is written in one place. The members are strings: `Sampler.EULER == "euler"`.
The order of the members is the order error messages list them in.
"""

import re
from enum import StrEnum


class Method(StrEnum):
    """How a photo is inverted (rawback.methods)."""

    DIFFUSION = "diffusion"  # the learned model (rawback.inference)
    ANALYTIC = "analytic"  # Brooks et al.'s inverse ISP (rawback.isp.unprocess)
    INVISP = "invisp"  # the Invertible-ISP flow run backwards (rawback.invisp_inference)
    LATENT = "latent"  # diffusion in the latent space of tiny autoencoders (rawback.latent_inference)


class ModelKind(StrEnum):
    """What `rawback train` trains (rawback.train.kinds): the `kind` of the training config."""

    DIFFUSION = "diffusion"  # the packed-Bayer diffusion model with its global head (rawback.model)
    INVISP = "invisp"  # Invertible ISP (Xing et al. 2021), the baseline flow
    LATENT = "latent"  # diffusion in the latent space of TAESD-family autoencoders


class LatentStage(StrEnum):
    """The stages of training the latent kind (rawback.train.latent_kind)."""

    AUTOENCODER = "autoencoder"  # fine-tune both autoencoders (reconstruction)
    DIFFUSION = "diffusion"  # the denoiser in their latent space, autoencoders frozen


class Sampler(StrEnum):
    """Diffusion samplers (rawback.sampling)."""

    EULER = "euler"
    HEUN = "heun"
    DPMPP_2M = "dpmpp-2m"
    ONE_STEP = "one-step"


class Precision(StrEnum):
    """The network's arithmetic (rawback.device.uses_bf16)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"


class Residual(StrEnum):
    """Where the denoiser's residual applies (rawback.inference.residual_trust)."""

    AUTO = "auto"  # the gate's trust on cameras the model was trained on, only where clipped elsewhere
    GATE = "gate"  # the residual gate's trust on every camera
    FULL = "full"  # everywhere, in full (the network as trained, no gate)
    CLIPPED = "clipped"  # only where the photo is clipped


class Transfer(StrEnum):
    """Transfer curves of input photos (rawback.isp.color)."""

    SRGB = "srgb"
    BT709 = "bt709"  # LibRaw's renders
    GAMMA22 = "gamma2.2"


class ToneCurve(StrEnum):
    """Tone curves to undo (rawback.finish decides which applies)."""

    AUTO = "auto"  # the profile's measured finish, for photos of the renderer it was measured on
    MEASURED = "measured"  # that finish whatever rendered the photo
    NONE = "none"
    SMOOTHSTEP = "smoothstep"  # Brooks et al.'s


class Compression(StrEnum):
    """How a DNG stores its raw data (rawback.io.dng)."""

    LJPEG = "ljpeg"  # lossless JPEG tiles
    NONE = "none"


class Protocol(StrEnum):
    """Evaluation protocols (rawback.evaluate.protocols, docs/evaluation.md)."""

    RAWBACK = "rawback"
    RAW_DIFFUSION = "raw-diffusion"
    INVERTIBLE_ISP = "invertible-isp"
    FINISHED = "finished"
    CAMERA_PREVIEW = "camera-preview"


# --device of every command.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps"

# The default sampler and step count, chosen from the `eval --steps` sweep (docs/experiments.md).
DEFAULT_SAMPLER = Sampler.EULER.value
DEFAULT_STEPS = 1
# Default (tile side in photo pixels, tiles per network call) by kind of device. On the CPU small
# tiles one at a time keep each tile's activations in cache (bench/bench_diffusion.py; the sweep is
# in docs/experiments.md#speed). On a GPU larger batches fill the device: None chooses the batch
# from its free memory (rawback.network); the tile is not tuned yet.
TILING: dict[str, tuple[int, int | None]] = {"cpu": (320, 1), "gpu": (512, None)}
# Photos a batch converts at once (rawback.pipeline): on a GPU their decode, prior and DNG encode
# overlap the network, and their tiles share its batches (rawback.schedule). A network on the CPU
# takes every core, and a second photo's CPU stages beside it slowed a 2-core batch by 10-37 %
# (docs/experiments.md): one at a time. The analytic method has no network: two photos at once
# use two cores.
IN_FLIGHT = {"cpu": 1, "gpu": 4, "analytic": 2}

"""The training configuration: one typed dataclass, read from a JSON file plus `--set` overrides."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawback.choices import LatentStage, ModelKind, Precision
from rawback.errors import UsageError

if TYPE_CHECKING:
    from rawback.isp.simulate import SimulatorSettings


@dataclass(frozen=True)
class TrainConfig:
    # What is trained (rawback.choices.ModelKind, rawback.train.kinds): the diffusion model, or one
    # of the other methods of the founding proposal, on the same data engine.
    kind: str = "diffusion"
    # The latent kind's stage (rawback.choices.LatentStage, docs/latent.md): fine-tune the
    # autoencoders, or train the denoiser in their latent space; and the weights file whose
    # autoencoders it starts from (tools/taesd_init.py's output for the first stage, the first
    # stage's model.pt for the second). Ignored by the other kinds.
    latent_stage: str = "autoencoder"
    autoencoder: str = ""
    model: str = "small"  # model preset (rawback.model.config.PRESETS)
    steps: int = 4000  # optimiser steps in total (a resumed run continues to this)
    batch_size: int = 8  # patches per step (per process under torchrun)
    patch: int = 128  # patch side in mosaic pixels (the network sees half: packed)
    lr: float = 3e-4  # AdamW peak learning rate
    weight_decay: float = 0.01
    warmup: int = 200  # linear warm-up steps, then cosine decay to lr_final
    lr_final: float = 1e-5
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.999  # EMA of the weights; the EMA copy is what gets shipped
    # Noise levels for training (EDM's log-normal): ln(sigma) ~ N(p_mean, p_std), and a share of
    # samples at sigma_max, the level the one-step sampler uses.
    p_mean: float = -2.0
    p_std: float = 1.5
    p_sigma_max: float = 0.25
    head_weight: float = 1.0  # weight of the global head's loss (white balance, exposure, tone curve)
    prior_jitter: float = 0.03  # log-std of white-balance/exposure error put into the prior
    # Chance that the global head sees a random crop of the photo instead of all of it: new scenes
    # for a head that otherwise learns the training photos' tones by heart. 0 (whole photos) is how
    # the bundled model was trained; docs/training.md has what crops changed when measured.
    scene_crops: float = 0.0
    # Synthetic scenes (docs/training.md, "Synthetic scenes"): a folder of photographs (`--scenes`)
    # filmed with library cameras, and the share of training items drawn from them; the rest come
    # from the RAW files of --data, the only real sensors. No folder: RAW files only.
    scenes: str = ""
    scene_fraction: float = 0.5
    # The scene photo's exposure over its RAW's, 2 ** U(range) stops: how much of it clips.
    scene_exposure_stops: tuple[float, ...] = (0.0, 1.5)
    # The synthetic sensor's ISO, log-uniform: sets the shot and read noise (Brooks et al.'s range,
    # ISO 100-12000, is the default).
    scene_iso: tuple[float, ...] = (100.0, 12000.0)
    # Chance that a scene's photo is LibRaw's render of its synthetic RAW (SceneSettings.libraw_share).
    scene_libraw: float = 0.0
    workers: int = 2  # DataLoader worker processes (spawn)
    seed: int = 0
    precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", "bf16"
    log_every: int = 10
    checkpoint_every: int = 250
    validate_every: int = 500
    validation: tuple[str, ...] = ()  # glob patterns (relative to --data) held out for validation
    exclude: tuple[str, ...] = ()  # glob patterns left out entirely (e.g. leave-one-camera-out)
    val_crop: int = 768  # centre crop (mosaic pixels) of each validation file, to keep it quick
    # Fine-tuning (`--init`, docs/training.md): the weights file the run's model started from, and
    # its SHA-256; empty: random initialisation.
    init: str = ""
    init_sha256: str = ""
    # Changes to the condition simulator's defaults (rawback.isp.simulate.SimulatorSettings), by
    # field name: `--set simulator.jpeg_quality=[70,95]`. Empty: the defaults, as the bundled
    # model was trained.
    simulator: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from rawback.model.config import PRESETS

        if self.model not in PRESETS:
            raise UsageError(f"model must be one of {', '.join(PRESETS)}, not {self.model!r}")
        if self.kind not in tuple(ModelKind):
            kinds = ", ".join(ModelKind)
            raise UsageError(f"kind must be one of {kinds}, not {self.kind!r}")
        if self.latent_stage not in tuple(LatentStage):
            stages = ", ".join(LatentStage)
            raise UsageError(f"latent_stage must be one of {stages}, not {self.latent_stage!r}")
        if self.precision not in tuple(Precision):
            raise UsageError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.patch % 2 or self.patch < 16:
            raise UsageError(f"patch must be an even number of pixels >= 16, not {self.patch}")
        positive = ("steps", "batch_size", "log_every", "checkpoint_every", "validate_every", "val_crop")
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0.0 <= self.scene_crops <= 1.0:
            raise UsageError(f"scene_crops is a probability, not {self.scene_crops}")
        for name in ("scene_fraction", "scene_libraw"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"{name} is a probability, not {getattr(self, name)}")
        stops = self.scene_exposure_stops
        if not _is_range(stops):
            raise UsageError(f"scene_exposure_stops must be [low, high] stops, not {list(stops)}")
        if not (_is_range(self.scene_iso) and self.scene_iso[0] > 0):
            raise UsageError(f"scene_iso must be [low, high] ISO, not {list(self.scene_iso)}")
        if self.workers < 0 or self.warmup < 0:
            raise UsageError("workers and warmup must not be negative")
        self.simulator_settings()  # a bad simulator field is a usage error before any work

    def check_data(self, data: Path | None) -> None:
        """A run reads RAW files (`--data`) unless it trains on the synthetic scenes alone."""
        if data is None and not (self.scenes and self.scene_fraction == 1.0):
            raise UsageError(
                "--data is required, unless --scenes is given with --set scene_fraction=1.0 (scenes only)"
            )

    def simulator_settings(self) -> SimulatorSettings:
        """The simulator's settings: its defaults with `simulator`'s changes (JSON lists become
        tuples, as the settings hold them)."""
        from rawback.isp.simulate import SimulatorSettings

        defaults = {f.name: f.default for f in dataclasses.fields(SimulatorSettings)}
        unknown = set(self.simulator) - set(defaults)
        if unknown:
            raise UsageError(
                f"unknown simulator setting(s): {', '.join(sorted(unknown))} (known: {', '.join(defaults)})"
            )
        changes = {}
        for key, value in self.simulator.items():
            default = defaults[key]
            if isinstance(default, tuple) != isinstance(value, (list, tuple)) or isinstance(value, bool):
                shape = json.dumps(default)
                raise UsageError(f"simulator setting {key} must look like {shape}, not {value!r}")
            changes[key] = _tuples(value)
        try:
            return SimulatorSettings(**changes)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"simulator settings: {exc}") from None

    def with_overrides(self, overrides: list[str]) -> TrainConfig:
        """Apply `key=value` strings (JSON values, or bare strings)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, object] = {}
        simulator_changes: dict[str, object] = {}
        for item in overrides:
            key, sep, text = item.partition("=")
            group, dot, sub = key.partition(".")
            if not sep or (key not in fields and not (dot and group == "simulator" and sub)):
                known = ", ".join(fields)
                raise UsageError(
                    f"--set expects KEY=VALUE with KEY one of: {known}, or simulator.FIELD (got {item!r})"
                )
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            if dot:
                simulator_changes[sub] = value
            else:
                changes[key] = value
        if simulator_changes:  # on top of the file's (or a whole `simulator={...}`) changes
            base = changes.get("simulator", self.simulator)
            if not isinstance(base, dict):
                raise UsageError(f"simulator must be a JSON object of simulator fields, not {base!r}")
            changes["simulator"] = {**base, **simulator_changes}
        return TrainConfig.from_dict({**dataclasses.asdict(self), **changes})

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise UsageError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        clean = {}
        for key, value in data.items():
            default = getattr(cls(), key)
            if isinstance(default, tuple):
                value = (value,) if isinstance(value, str) else tuple(value)
            elif isinstance(default, float) and isinstance(value, int):
                value = float(value)
            elif type(default) is not type(value):
                raise UsageError(f"training setting {key} must be {type(default).__name__}, not {value!r}")
            clean[key] = value
        return cls(**clean)

    @classmethod
    def from_file(cls, path: Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the training config ({exc})") from exc

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def train_config(
    *,
    config_file: Path | None = None,
    overrides: Sequence[str] = (),
    validation: Sequence[str] = (),
    exclude: Sequence[str] = (),
    scenes: Path | None = None,
    init: str | Path | None = None,
) -> TrainConfig:
    """The settings of `rawback train`: the config file's (else the defaults), then the `--set`
    overrides, then the --validation and --exclude globs, the --scenes folder and the --init weights,
    which go through the same overrides (so they are checked, and saved in the run's config.json,
    like any other setting)."""
    settings = TrainConfig.from_file(config_file) if config_file else TrainConfig()
    overrides = list(overrides)
    if validation:
        overrides.append(f"validation={json.dumps(list(validation))}")
    if exclude:
        overrides.append(f"exclude={json.dumps(list(exclude))}")
    if scenes is not None:
        overrides.append(f"scenes={json.dumps(str(scenes))}")
    if init is not None:
        # a digest a --config file recorded belongs to the weights it named, not to these
        overrides += [f"init={json.dumps(str(init))}", 'init_sha256=""']
    return settings.with_overrides(overrides)


def names_model(config_file: Path | None, overrides: Sequence[str]) -> bool:
    """Whether the user chose a model preset (in the config file or by --set), which a fine-tuning
    run's weights file must then agree with."""
    if any(item.partition("=")[0] == "model" for item in overrides):
        return True
    return config_file is not None and "model" in json.loads(Path(config_file).read_text())


def _is_range(values: tuple[float, ...]) -> bool:
    """[low, high]: two numbers, low <= high."""
    return len(values) == 2 and all(isinstance(v, (int, float)) for v in values) and values[0] <= values[1]

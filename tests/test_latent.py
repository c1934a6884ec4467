"""The latent-diffusion variant: the TAESD-layout autoencoders, seamless tiled coding, both training
stages of the latent kind, and `convert --method latent`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rawback.latent_codec as codec
from rawback.cli import app
from rawback.diffusion_settings import DiffusionSettings
from rawback.latent_inference import decode_latents, sample_latents
from rawback.latent_weights import load_latent_weights, save_latent_weights
from rawback.model.latent import LatentModel, latent_preset
from rawback.model.tiny_autoencoder import TinyDecoder, TinyEncoder, packed_state
from rawback.train.config import TrainConfig
from rawback.train.loop import TrainOptions, train
from tests.test_batch import write_photo

# The TAEF2 files' layout (github.com/madebyollin/taesd, taef2_*.pth): 79 tensors each, and these
# parameter counts, as read from the real files; a few of their keys and shapes.
TAEF2_TENSORS = 79
TAEF2_ENCODER_NUMEL = 1_338_528
TAEF2_DECODER_NUMEL = 1_338_499
TAEF2_ENCODER_KEYS = {
    "0.weight": (64, 3, 3, 3), "1.conv.4.weight": (64, 64, 3, 3), "2.weight": (64, 64, 3, 3),
    "11.pool.0.weight": (256, 64, 1, 1), "11.pool.1.bias": (256,), "13.pool.3.weight": (64, 256, 1, 1),
    "14.weight": (32, 64, 3, 3), "14.bias": (32,),
}  # fmt: skip
TAEF2_DECODER_KEYS = {
    "1.weight": (64, 32, 3, 3), "3.pool.0.weight": (256, 64, 1, 1), "5.conv.2.bias": (64,),
    "7.weight": (64, 64, 3, 3), "18.conv.4.weight": (64, 64, 3, 3), "19.weight": (3, 64, 3, 3),
}  # fmt: skip


def random_taef2_state(keys: dict[str, tuple[int, ...]], module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A random fp16 state dict of the TAEF2 layout, as the files hold them."""
    generator = torch.Generator().manual_seed(0)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    for key, shape in keys.items():
        assert shapes[key] == shape, key
    return {k: (torch.randn(s, generator=generator) * 0.05).half() for k, s in shapes.items()}


def test_the_architecture_loads_a_state_dict_of_the_taef2_layout() -> None:
    for module, keys, numel in (
        (TinyEncoder(), TAEF2_ENCODER_KEYS, TAEF2_ENCODER_NUMEL),
        (TinyDecoder(), TAEF2_DECODER_KEYS, TAEF2_DECODER_NUMEL),
    ):
        state = random_taef2_state(keys, module)
        assert len(state) == TAEF2_TENSORS
        assert sum(v.numel() for v in state.values()) == numel
        module.load_state_dict(state)  # strict: every key and shape of the layout
        assert torch.equal(module.state_dict()["0.weight" if "0.weight" in state else "1.weight"].half(),
                           state["0.weight" if "0.weight" in state else "1.weight"])  # fmt: skip


def test_packed_adaptation_keeps_the_rgb_response_to_grey() -> None:
    """R -> R, G1 and G2 from G (halves), B -> B: a grey packed image (R = G1 = G2 = B) encodes as
    the grey RGB image does, and the packed decoder's greens are its RGB decoder's green."""
    rgb_encoder, rgb_decoder = TinyEncoder(), TinyDecoder()
    encoder_state = {k: v.float() for k, v in random_taef2_state(TAEF2_ENCODER_KEYS, rgb_encoder).items()}
    decoder_state = {k: v.float() for k, v in random_taef2_state(TAEF2_DECODER_KEYS, rgb_decoder).items()}
    rgb_encoder.load_state_dict(encoder_state)
    rgb_decoder.load_state_dict(decoder_state)
    packed_encoder, packed_decoder = TinyEncoder(in_channels=4), TinyDecoder(out_channels=4)
    packed_encoder.load_state_dict(packed_state(encoder_state, "encoder"))
    packed_decoder.load_state_dict(packed_state(decoder_state, "decoder"))
    grey = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        z = packed_encoder(grey.expand(1, 4, 16, 24))
        torch.testing.assert_close(z, rgb_encoder(grey.expand(1, 3, 16, 24)), atol=1e-5, rtol=1e-4)
        packed, rgb = packed_decoder(z), rgb_decoder(z)
    torch.testing.assert_close(packed[:, [0, 1, 2, 3]], rgb[:, [0, 1, 1, 2]], atol=1e-6, rtol=1e-6)


def test_tiled_coding_equals_untiled_and_fails_with_too_small_a_margin(monkeypatch) -> None:
    """Tiles with a margin beyond the receptive field and cropped cores: the same result as one
    pass over the image, to float rounding (1e-4 on values of order 1); too small a margin shows."""
    torch.manual_seed(0)
    encoder, decoder = TinyEncoder(in_channels=4), TinyDecoder(out_channels=4)
    image = torch.rand(1, 4, 128, 160)  # 16 x 20 latent pixels: 2 x 2 tiles of 10
    z = torch.randn(1, 32, 16, 20)
    with torch.no_grad():
        whole_z, whole_image = encoder(image), decoder(z)

    def relative_error(tiled: torch.Tensor, whole: torch.Tensor) -> float:
        return float((tiled - whole).abs().max() / whole.abs().max())

    assert relative_error(codec.encode_tiled(encoder, image, core=10), whole_z) < 1e-4
    assert relative_error(codec.decode_tiled(decoder, z, core=10), whole_image) < 1e-4
    monkeypatch.setattr(codec, "DECODER_MARGIN", 1)
    assert relative_error(codec.decode_tiled(decoder, z, core=10), whole_image) > 1e-3


def tiny_latent_model(seed: int = 0) -> LatentModel:
    torch.manual_seed(seed)
    model = LatentModel(latent_preset("tiny")).eval()
    # A denoiser that changes something: its zero-initialised output layer made non-zero.
    torch.nn.init.normal_(model.denoiser.unet.out.weight, std=0.01)
    return model


@pytest.mark.parametrize("residual_decoding", [True, False])
def test_odd_sizes_are_padded_and_cropped_back(residual_decoding: bool) -> None:
    model = tiny_latent_model()
    h, w = 37, 53  # packed: neither a multiple of 8
    photo, prior = torch.rand(1, 3, 2 * h, 2 * w), torch.rand(1, 4, h, w) * 0.5
    settings = DiffusionSettings(tile=64, overlap=32, steps=2)
    latents = sample_latents(model, photo, prior, torch.zeros(1, 12), settings, seed=1)
    assert latents.z.shape == (1, 32, 5, 7) and latents.prior.shape == (1, 4, 40, 56)
    packed = decode_latents(model, latents, residual_decoding=residual_decoding)
    assert packed.shape == (1, 4, 40, 56) and 0.0 <= float(packed.min()) <= float(packed.max()) <= 1.0
    if residual_decoding:  # where the latent is the prior's, the prior comes back exactly
        same = decode_latents(model, latents._replace(z=latents.z_prior), residual_decoding=True)
        torch.testing.assert_close(same[..., :h, :w], prior, atol=1e-6, rtol=0)


TINY_LATENT_TRAIN = dict(
    kind="latent", model="tiny", steps=2, batch_size=2, patch=32, warmup=1, workers=0, log_every=1,
    checkpoint_every=1, validate_every=1000, val_crop=64, lr=1e-5,
)  # fmt: skip


def test_both_training_stages_run_and_resume_exactly(raw_folder, cache_dir, tmp_path) -> None:
    first = TrainConfig(**TINY_LATENT_TRAIN, latent_stage="autoencoder")
    autoencoder = train(TrainOptions(data=raw_folder, out=tmp_path / "ae", config=first, cache_dir=cache_dir))
    ae_model = load_latent_weights(autoencoder)
    second = TrainConfig(
        **{**TINY_LATENT_TRAIN, "steps": 3}, latent_stage="diffusion", autoencoder=str(autoencoder)
    )
    straight = train(
        TrainOptions(data=raw_folder, out=tmp_path / "straight", config=second, cache_dir=cache_dir)
    )

    def interrupt_at_step_2(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(TrainOptions(data=raw_folder, out=out, config=second, cache_dir=cache_dir), interrupt_at_step_2)
    train(TrainOptions(data=raw_folder, out=out, config=second, cache_dir=cache_dir, resume=True))
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(out / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    trained = load_latent_weights(straight)
    # The second stage trained the denoiser only: the first stage's autoencoders are kept as they were.
    for name in ("raw_encoder", "raw_decoder", "photo_encoder"):
        for key, value in getattr(ae_model, name).state_dict().items():
            assert torch.equal(getattr(trained, name).state_dict()[key], value), (name, key)
    assert any(
        not torch.equal(value, trained.denoiser.state_dict()[key])
        for key, value in ae_model.denoiser.state_dict().items()
    )


def test_the_diffusion_stage_needs_the_first_stage_weights(raw_folder, cache_dir, tmp_path) -> None:
    from rawback.errors import UsageError

    config = TrainConfig(**TINY_LATENT_TRAIN, latent_stage="diffusion")
    with pytest.raises(UsageError, match="latent_stage=diffusion needs --set autoencoder="):
        train(TrainOptions(data=raw_folder, out=tmp_path / "run", config=config, cache_dir=cache_dir))
    with pytest.raises(UsageError, match="latent_stage must be one of autoencoder, diffusion"):
        TrainConfig(latent_stage="both")


def test_convert_method_latent_writes_a_dng_from_a_tiny_weights_file(tmp_path: Path) -> None:
    import rawpy

    weights = tmp_path / "latent-tiny.pt"
    save_latent_weights(tiny_latent_model(), weights)
    photo = write_photo(tmp_path / "photo.jpg", size=(72, 56))
    out = tmp_path / "photo.dng"
    args = ["convert", str(photo), "-o", str(out), "--method", "latent", "--weights", str(weights)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with rawpy.imread(str(out)) as raw:
        assert raw.raw_image.shape[0] >= 54 and np.asarray(raw.raw_image).max() > 0
    bad = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "photo.jpg"), "--overwrite"])
    assert bad.exit_code != 0 and "not a rawback weights file" in bad.output


def test_eval_of_the_latent_method_records_its_weights(raw_folder, tmp_path) -> None:
    from rawback.evaluate.report import run_line, to_json
    from rawback.evaluate.run import EvalOptions, run_eval

    weights = tmp_path / "latent.pt"
    save_latent_weights(tiny_latent_model(), weights)
    settings = DiffusionSettings(weights=str(weights), device="cpu", steps=1)
    report = run_eval(EvalOptions(data=raw_folder, method="latent", include=("b/*",), diffusion=settings))
    (image,) = report.images
    assert image.error is None and np.isfinite(image.rows["latent"]["psnr_packed"])
    run = to_json(report)["run"]
    assert run["latent_weights"] == str(weights.resolve())
    assert run["latent_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"latent weights `latent.pt` (sha256 {run['latent_weights_sha256'][:12]})" in run_line(run)

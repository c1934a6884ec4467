"""The network (rawback.model) and its weights files (rawback.weights): model configs, the global
head and the attention block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rawback.errors import RawbackError
from rawback.model.config import ModelConfig, preset
from rawback.model.heads import GlobalHead
from rawback.weights import load_weights


def test_weights_round_trip_and_damaged_file(tiny_weights, tmp_path) -> None:
    model = load_weights(tiny_weights)
    assert model.config == preset("tiny")
    assert json.loads(tiny_weights.with_suffix(".json").read_text())["name"] == "tiny"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(RawbackError, match="not a rawback weights file"):
        load_weights(bad)
    payload = torch.load(tiny_weights, weights_only=True)
    del payload["state"]["denoiser.unet.out.weight"]  # as from another version of the network
    torch.save(payload, bad)
    with pytest.raises(RawbackError, match="do not fit"):
        load_weights(bad)


def test_weights_from_before_the_global_head_was_renamed_load_the_same(tiny_weights, tmp_path) -> None:
    """The shipped model was saved when the global head was `illuminant` in both its config and its
    state dict: such files must keep loading, to the same numbers."""
    payload = torch.load(tiny_weights, weights_only=True)
    config = json.loads(payload["config"])
    config["illuminant"] = config.pop("global_head")
    payload["config"] = json.dumps(config)
    payload["state"] = {k.replace("global_head.", "illuminant.", 1): v for k, v in payload["state"].items()}
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert load_weights(old).config == load_weights(tiny_weights).config
    renamed, current = load_weights(old).state_dict(), load_weights(tiny_weights).state_dict()
    assert renamed.keys() == current.keys()
    assert all(torch.equal(renamed[k], current[k]) for k in current)


def test_weights_from_before_the_curve_load_without_one() -> None:
    data = json.loads(preset("small").to_json())
    del data["global_head"]["tone_knots"]
    assert ModelConfig.from_dict(data).global_head.tone_knots == 0


def test_the_head_predicts_the_knots_its_config_asks_for() -> None:
    config = preset("tiny").global_head
    head = GlobalHead(config)
    corrections, finish = head(torch.zeros(2, 6, 16, 16), torch.zeros(2, 12), torch.zeros(2, 2))
    assert corrections.shape == (2, 3 + config.tone_knots)
    assert finish.shape == (2, config.finish_channels)


def test_attention_is_softmax_of_scaled_dot_products_per_head() -> None:
    # The module lays q, k, v out for the fused kernel; this pins the layout to the textbook
    # formula, so a wrong permutation cannot pass for a faster one.
    from rawback.model.unet import Attention

    torch.manual_seed(0)
    block = Attention(channels=64, head_channels=32, groups=8).double()
    torch.nn.init.normal_(block.out.weight)  # zero-initialised out would hide the attention
    x = torch.randn(2, 64, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        n, c, h, w = x.shape
        qkv = block.qkv(block.norm(x)).reshape(n, 3, block.heads, c // block.heads, h * w)
        heads = []
        for head in range(block.heads):
            q, k, v = (qkv[:, i, head].transpose(1, 2) for i in range(3))  # (n, positions, channels)
            weights = torch.softmax(q @ k.transpose(1, 2) / (c // block.heads) ** 0.5, dim=-1)
            heads.append((weights @ v).transpose(1, 2))  # (n, channels, positions)
        expected = x + block.out(torch.cat(heads, dim=1).reshape(n, c, h, w))
        assert torch.allclose(block(x), expected, atol=1e-10)


def _crafted(tiny_weights: Path, tmp_path: Path, change) -> Path:
    payload = torch.load(tiny_weights, weights_only=True)
    change(payload)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


def _set_config(payload: dict, **values) -> None:
    config = json.loads(payload["config"])
    config["unet"].update(values)
    payload["config"] = json.dumps(config)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p.update(config="{not json"),  # JSONDecodeError
        lambda p: p.pop("state"),  # KeyError 'state'
        lambda p: p.update(config=json.dumps({"name": "x"})),  # KeyError 'unet'
        lambda p: p.update(config=json.dumps(["a", "list"])),  # TypeError
        lambda p: p.update(state=[1, 2, 3]),
        lambda p: p.update(state={"denoiser.unet.out.weight": "text"}),
        lambda p: _set_config(p, base_channels=10**9),  # would allocate for ever
        lambda p: _set_config(p, base_channels=-8),
        lambda p: _set_config(p, channel_mults=[1] * 1000),
        lambda p: _set_config(p, groups=0),
    ],
    ids=[
        "json",
        "no-state",
        "no-unet",
        "config-list",
        "state-list",
        "state-text",
        "huge",
        "negative",
        "many-levels",
        "zero-groups",
    ],
)
def test_issue_21_weights_with_the_right_marker_but_wrong_contents_are_one_error(
    tiny_weights: Path, tmp_path: Path, change
) -> None:
    """Such files crashed with JSONDecodeError, KeyError, TypeError or allocator errors."""
    with pytest.raises(RawbackError, match=r"crafted\.pt: (damaged weights file|weights do not fit)"):
        load_weights(_crafted(tiny_weights, tmp_path, change))

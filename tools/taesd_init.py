"""Make the latent kind's starting weights from TAESD's FLUX.2 autoencoder (docs/latent.md).

    python tools/taesd_init.py /work/.mirror/madebyollin+taesd/repo runs/taef2-init.pt

Reads taef2_encoder.pth and taef2_decoder.pth from a TAESD checkout or bare git snapshot
(github.com/madebyollin/taesd, MIT licence, Copyright (c) 2023 Ollin Boer Bohan), adapts them to
packed RGGB (rawback.model.tiny_autoencoder.packed_state) for the RAW autoencoder, keeps the RGB
encoder as it is for the photo encoder, and writes a rawback-latent weights file (float32, the
denoiser at its random initialisation) whose meta records the repository, commit, file names and
SHA-256 of the originals. The originals are not copied anywhere. Train from it with
`rawback train --set kind=latent --set latent_stage=autoencoder --set autoencoder=OUT`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import torch

from rawback.latent_weights import save_latent_weights
from rawback.model.latent import LatentModel, latent_preset
from rawback.model.tiny_autoencoder import packed_state

FILES = {"encoder": "taef2_encoder.pth", "decoder": "taef2_decoder.pth"}
REPOSITORY = "https://github.com/madebyollin/taesd"


def read_file(source: Path, name: str) -> tuple[bytes, str | None]:
    """(bytes, commit or None) of `name` in a checkout (a plain folder) or a bare git directory."""
    if (source / name).is_file():
        commit = _git(source, "rev-parse", "HEAD", check=False)
        return (source / name).read_bytes(), commit
    commit = _git(source, "rev-parse", "HEAD")
    data = subprocess.run(
        ["git", "-C", str(source), "show", f"HEAD:{name}"], capture_output=True, check=True
    ).stdout
    return data, commit


def _git(source: Path, *args: str, check: bool = True) -> str | None:
    result = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)
    if result.returncode != 0:
        if check:
            sys.exit(f"{source}: neither holds {FILES['encoder']} nor is a git snapshot of TAESD")
        return None
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="TAESD checkout or bare git snapshot")
    parser.add_argument("out", type=Path, help="weights file to write (.pt)")
    parser.add_argument("--model", default="small", help="latent model preset (rawback.model.latent)")
    args = parser.parse_args()
    model = LatentModel(latent_preset(args.model))
    provenance: dict[str, object] = {
        "repository": REPOSITORY,
        "licence": "MIT, Copyright (c) 2023 Ollin Boer Bohan",
    }
    states = {}
    for part, name in FILES.items():
        data, commit = read_file(args.source, name)
        provenance["commit"] = commit
        provenance[name] = hashlib.sha256(data).hexdigest()
        states[part] = {k: v.float() for k, v in torch.load(io.BytesIO(data), weights_only=True).items()}
    model.raw_encoder.load_state_dict(packed_state(states["encoder"], "encoder"))
    model.raw_decoder.load_state_dict(packed_state(states["decoder"], "decoder"))
    model.photo_encoder.load_state_dict(states["encoder"])
    save_latent_weights(model, args.out, meta={"taesd": provenance}, dtype=torch.float32)
    print(f"wrote {args.out}: {provenance}")


if __name__ == "__main__":
    main()

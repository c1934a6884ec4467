"""Score a latent weights file on validation crops, as `rawback train` validates the latent kind.

    python tools/latent_validate.py --data ../shared/data/raw --weights runs/taef2-init.pt \
        --validation canon_s40/CRW_0118.CRW --validation canon_g2/CRW_0304.CRW ... [--stage diffusion]

Prints the packed PSNR of the RAW autoencoder's reconstruction of the truth and of the analytic
baseline, and with --stage diffusion the model's with residual and with plain decoding (JSON):
how docs/latent.md measured the autoencoder before fine-tuning and the two decodings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rawback.latent_weights import load_latent_weights
from rawback.train.data import build_cache, default_cache_dir
from rawback.train.latent_kind import validate
from rawback.train.validation import prepare_validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--validation", action="append", required=True, help="file under --data")
    parser.add_argument("--stage", choices=("autoencoder", "diffusion"), default="autoencoder")
    parser.add_argument("--val-crop", type=int, default=768, help="centre crop, as TrainConfig.val_crop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folders, errors = build_cache([args.data / name for name in args.validation], default_cache_dir())
    if errors:
        raise SystemExit("; ".join(errors))
    model = load_latent_weights(args.weights)
    model.stage = args.stage  # type: ignore[assignment]
    print(json.dumps(validate(model, prepare_validation(folders, args.val_crop)), indent=2))


if __name__ == "__main__":
    main()

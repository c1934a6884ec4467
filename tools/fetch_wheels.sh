#!/usr/bin/env bash
# The wheels the lent GPU machine lacks (Python 3.12, manylinux x86_64; nothing can be downloaded
# there), downloaded here into .whl/ (git-ignored), which tools/gpu_train.sh installs into /tmp/site.
#
#   tools/fetch_wheels.sh          what training on scenes imports: piexif (pure Python, 20 KB)
#   tools/fetch_wheels.sh all      also rawpy, imagecodecs and simplejpeg (convert, eval, tests on
#                                  the device); imagecodecs alone is too large to carry beside the
#                                  scene pack and a checkpoint (docs/training.md has the sizes)
#
# Versions are the ones of the development environment (pip show); their only dependency, numpy,
# is on the device already.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=(piexif==1.1.3)
if [[ "${1:-}" == "all" ]]; then
    wheels+=(rawpy==0.28.0 imagecodecs==2026.3.6 simplejpeg==1.9.0)
fi
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
du -b .whl/*.whl | awk '{printf "%7.2f MiB  %s\n", $1 / 1048576, $2}'

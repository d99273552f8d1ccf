#!/usr/bin/env bash
# Install MMPose 1.3.2 into the project's venv, for the optional HRNet-W32 AP-10K pose model
# (DOGSEARCH_POSE_MODEL=hrnet-w32-ap10k). What works with torch 2.14 / Python 3.11 and why each step is here:
# ../shared/notes/mmpose-install.md, summarised in docs/pose.md.
#
# mmcv 2.1.0 has no wheel for this torch: it is built from its sdist with the C++ standard raised to C++20
# (torch's headers need it; mmcv's setup.py asks for C++14/17), about 13 minutes on 2 cores. The built wheel is
# kept in $WHEELHOUSE (default .wheelhouse/, git-ignored), keyed by Python and torch version, so later runs
# install it in seconds. Safe to run again: it does nothing when MMPose already imports.
set -euo pipefail

VENV=$(realpath -m "${VENV:-.venv}")
PY="$VENV/bin/python"
WHEELHOUSE=$(realpath -m "${WHEELHOUSE:-.wheelhouse}")
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMPOSE_VERSION=1.3.2
XTCOCOTOOLS_VERSION=1.14.3

log() { echo "install-mmpose: $*" >&2; }

[ -x "$PY" ] || { log "no Python at $PY: run 'make setup' first"; exit 1; }
pip_() { "$PY" -m pip --disable-pip-version-check "$@"; }

if "$PY" -c "from mmpose.apis import init_model, inference_topdown" 2>/dev/null; then
  log "MMPose already importable: nothing to do"
  exit 0
fi

TORCH=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
PYTAG=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
CACHE="$WHEELHOUSE/mmcv-$MMCV_VERSION-torch-$TORCH"
mkdir -p "$CACHE"
wheel=$(find "$CACHE" -maxdepth 1 -name "mmcv-$MMCV_VERSION-$PYTAG-*.whl" | head -n 1)

if [ -z "$wheel" ]; then
  log "building mmcv $MMCV_VERSION from source for torch $TORCH (about 13 minutes on 2 cores)"
  build=$(mktemp -d)
  trap 'rm -rf "$build"' EXIT
  # mmcv's setup.py imports pkg_resources (gone from setuptools >= 70) even to read its metadata: an old
  # setuptools for this build only, first on the path, so the venv's own setuptools is left alone.
  pip_ install -q --target "$build/buildtools" "setuptools<70" wheel
  pip_ install -q addict packaging pyyaml yapf  # imported by setup.py
  PYTHONPATH="$build/buildtools" pip_ download --no-deps --no-build-isolation --no-binary :all: \
      "mmcv==$MMCV_VERSION" -d "$build"
  tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
  src="$build/mmcv-$MMCV_VERSION"
  sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$src/setup.py"
  if grep -qE -- '-std=c\+\+1[47]' "$src/setup.py" || ! grep -q -- '-std=c++20' "$src/setup.py"; then
    log "could not switch mmcv's setup.py to -std=c++20: its layout changed"; exit 1
  fi
  (cd "$src" && PYTHONPATH="$build/buildtools" MMCV_WITH_OPS=1 FORCE_CUDA=${FORCE_CUDA:-0} MAX_JOBS=${MAX_JOBS:-2} \
      nice -n 10 "$PY" -m pip --disable-pip-version-check wheel --no-build-isolation --no-deps -w "$CACHE" .)
  wheel=$(find "$CACHE" -maxdepth 1 -name "mmcv-$MMCV_VERSION-$PYTAG-*.whl" | head -n 1)
  [ -n "$wheel" ] || { log "mmcv build produced no wheel"; exit 1; }
else
  log "using the cached mmcv wheel $wheel"
fi

pip_ install -q "$wheel"  # with mmcv's own dependencies (mmengine, addict, yapf, opencv)
# mmengine imports pkg_resources when MMPose is imported; setuptools 81 removed it
pip_ install -q "setuptools<81"
# MMPose's requirements without chumpy (its sdist cannot build; only human body models use it)
pip_ install -q json-tricks munkres opencv-python-headless scipy matplotlib six pycocotools shapely \
    terminaltables cython
# the xtcocotools wheel is built against numpy 1.x ("numpy.dtype size changed" with numpy 2): from source
pip_ install -q --no-binary xtcocotools --no-build-isolation --force-reinstall --no-deps \
    "xtcocotools==$XTCOCOTOOLS_VERSION"
# mmpose imports mmdet.utils; both without their pinned dependencies (mmdet asserts mmcv < 2.2.0: ours fits)
pip_ install -q --no-deps "mmdet==$MMDET_VERSION" "mmpose==$MMPOSE_VERSION"

"$PY" - <<'PY'
from mmpose.apis import inference_topdown, init_model  # noqa: F401

from dogsearch.models.pose.hrnet import mmpose_config_path

print("install-mmpose: MMPose works; HRNet-W32 AP-10K config:", mmpose_config_path())
PY

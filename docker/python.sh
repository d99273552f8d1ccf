#!/bin/sh
# Python for the image: python:*-slim already has it; a CUDA base image (Ubuntu) gets the distribution's
# python3 and python3-venv (Ubuntu moves ensurepip, which venv needs, into that package).
# The same script runs in the build and runtime stages, so the venv's interpreter exists in both.
set -eu
if command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null; then
  exit 0
fi
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv
rm -rf /var/lib/apt/lists/*

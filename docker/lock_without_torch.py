"""Print a pip-compile lock file less torch's own files: torch, torchvision, triton and the CUDA libraries of PyPI's
Linux build. The images install those from TORCH_INDEX_URL (a CPU or a CUDA build: other files than the lock hashes),
then everything else from this output with --require-hashes.

usage: python lock_without_torch.py requirements.lock > /tmp/deps.lock
"""
import re
import sys

TORCH_OWN = re.compile(r"(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==")


def main(path: str) -> None:
    keep = True
    with open(path) as lock:
        for line in lock:
            if line.strip() and not line[0].isspace():  # a requirement or a comment starts a new entry
                keep = TORCH_OWN.match(line) is None
            if keep:
                sys.stdout.write(line)


if __name__ == "__main__":
    main(sys.argv[1])

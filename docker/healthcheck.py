"""Container healthcheck: exit 0 when GET <url> answers 200 (the services' /readyz), else 1. No curl needed."""
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 5) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception as exc:  # connection refused, 503 while loading, timeout
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)

"""`make audit`: known advisories in what the project installs; CI runs it (.ci/run).

- Python: pip-audit over the lock files, installing nothing: every pinned release (requirements-test.lock holds
  requirements.lock's versions plus the test extra) is looked up in PyPI's advisory data. Any advisory fails but
  those in IGNORED, each with its reason.
- npm: `npm audit --omit=dev` in web/: the packages the built UI ships (dev tools never reach a browser); high and
  critical fail.

An audit that could not look (the advisory service did not answer, a release it does not know) is no pass: it fails
too, unless AUDIT_ALLOW_INCOMPLETE=1, which lists what went unchecked instead.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCKS = ("requirements-test.lock", "requirements-nodeps.lock")
# Advisory id -> why no release can fix it yet. Empty: raise the version (pyproject.toml floor, make lock) instead.
IGNORED: dict[str, str] = {}
NPM_FAILING = ("high", "critical")


@dataclass
class Audit:
    name: str
    findings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(cmd: list[str], cwd: Path) -> tuple[dict | None, str]:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    try:
        return json.loads(out.stdout), out.stderr
    except json.JSONDecodeError:
        return None, (out.stderr or out.stdout).strip()[-500:]


def python_audit() -> Audit:
    audit = Audit("pip-audit")
    cmd = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off", "--disable-pip",
           "--require-hashes"]
    for lock in LOCKS:
        cmd += ["--requirement", lock]
    for advisory in IGNORED:
        cmd += ["--ignore-vuln", advisory]
    report, err = run(cmd, REPO)
    if report is None:
        audit.errors.append(f"pip-audit did not report: {err}")
        return audit
    for dep in report["dependencies"]:
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no release yet"
            audit.findings.append(f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
        if dep.get("skip_reason"):
            audit.unchecked.append(f"{dep['name']}: {dep['skip_reason']}")
    return audit


def npm_audit() -> Audit:
    audit = Audit("npm audit")
    report, err = run(["npm", "audit", "--omit=dev", "--audit-level=high", "--json"], REPO / "web")
    if report is None:
        audit.errors.append(f"npm audit did not report: {err}")
        return audit
    if "auditReportVersion" not in report:  # a JSON error object: the registry's advisory endpoint refused
        audit.unchecked.append(f"npm audit: {report.get('message', report)}")
        return audit
    for name, vuln in sorted(report.get("vulnerabilities", {}).items()):
        if vuln.get("severity") in NPM_FAILING:
            audit.findings.append(f"{name}: {vuln['severity']} ({vuln.get('range', '')})")
    return audit


def timed(check) -> Audit:
    start = time.monotonic()
    audit = check()
    audit.seconds = time.monotonic() - start
    return audit


def main() -> int:
    allow_incomplete = os.environ.get("AUDIT_ALLOW_INCOMPLETE") == "1"
    failed = False
    for audit in (timed(python_audit), timed(npm_audit)):
        print(f"{audit.name}: {len(audit.findings)} advisories, {len(audit.unchecked)} unchecked "
              f"({audit.seconds:.1f} s)")
        for line in audit.findings:
            print(f"  ADVISORY {line}")
        for line in audit.errors:
            print(f"  ERROR {line}")
        for line in audit.unchecked[:10]:
            print(f"  NOT CHECKED {line}")
        if len(audit.unchecked) > 10:
            print(f"  NOT CHECKED ... and {len(audit.unchecked) - 10} more")
        failed |= bool(audit.findings or audit.errors) or (bool(audit.unchecked) and not allow_incomplete)
    if failed:
        print("audit failed: raise the versions flagged (pyproject.toml floors, make lock; web/package.json, npm "
              "update); an audit that could not look fails too, unless AUDIT_ALLOW_INCOMPLETE=1", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

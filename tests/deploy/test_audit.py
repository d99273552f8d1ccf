"""make audit (scripts/audit.py) fails on an advisory and on an audit that could not look, with canned answers from
pip-audit and npm audit (the real services are not reachable from every CI)."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.deploy.tools import REPO

spec = importlib.util.spec_from_file_location("audit", REPO / "scripts" / "audit.py")
audit = importlib.util.module_from_spec(spec)
sys.modules["audit"] = audit  # dataclasses look their module up there
spec.loader.exec_module(audit)

CLEAN_PIP = {"dependencies": [{"name": "pillow", "version": "13.0.0", "vulns": []}], "fixes": []}
CLEAN_NPM = {"auditReportVersion": 2, "vulnerabilities": {}}
PIP_ADVISORY = {"dependencies": [{"name": "pillow", "version": "10.0.0", "vulns": [
    {"id": "GHSA-3f63-hfp8-52jq", "fix_versions": ["10.2.0"], "aliases": ["CVE-2023-50447"]}]}]}
PIP_UNCHECKED = {"dependencies": [{"name": "pillow", "version": "13.0.0",
                                   "skip_reason": "Dependency not found on PyPI and could not be audited"}]}
NPM_HIGH = {"auditReportVersion": 2, "vulnerabilities": {"react-dom": {"severity": "high", "range": "<19.0.1"}}}
NPM_MODERATE = {"auditReportVersion": 2, "vulnerabilities": {"react-dom": {"severity": "moderate", "range": "<19"}}}
NPM_REFUSED = {"message": "405 Method Not Allowed", "statusCode": 405}


def outcome(monkeypatch, pip: dict | None, npm: dict | None, allow_incomplete: bool = False) -> int:
    def run(cmd, cwd):
        report = pip if "pip_audit" in cmd else npm
        return report, "" if report is not None else "Traceback: boom"

    monkeypatch.setattr(audit, "run", run)
    monkeypatch.setenv("AUDIT_ALLOW_INCOMPLETE", "1" if allow_incomplete else "0")
    return audit.main()


def test_clean_reports_pass(monkeypatch) -> None:
    assert outcome(monkeypatch, CLEAN_PIP, CLEAN_NPM) == 0
    assert outcome(monkeypatch, CLEAN_PIP, NPM_MODERATE) == 0  # below high: reported by npm, not failed on


@pytest.mark.parametrize(("pip", "npm"), [(PIP_ADVISORY, CLEAN_NPM), (CLEAN_PIP, NPM_HIGH)], ids=["python", "npm"])
def test_an_advisory_fails_even_when_incomplete_audits_are_allowed(monkeypatch, pip, npm, capsys) -> None:
    assert outcome(monkeypatch, pip, npm, allow_incomplete=True) == 1
    assert "ADVISORY" in capsys.readouterr().out


@pytest.mark.parametrize(("pip", "npm"), [(PIP_UNCHECKED, CLEAN_NPM), (CLEAN_PIP, NPM_REFUSED)], ids=["python", "npm"])
def test_an_audit_that_could_not_look_fails_unless_allowed(monkeypatch, pip, npm, capsys) -> None:
    assert outcome(monkeypatch, pip, npm) == 1
    assert outcome(monkeypatch, pip, npm, allow_incomplete=True) == 0
    assert "NOT CHECKED" in capsys.readouterr().out


def test_a_tool_that_breaks_fails_always(monkeypatch) -> None:
    assert outcome(monkeypatch, None, CLEAN_NPM, allow_incomplete=True) == 1

"""Settings fail fast at `dogsearch serve` and `dogsearch worker`, in words: a misspelt variable stops the process
(it was ignored, and its default used) and names the setting it was likely meant as; a list not written as JSON is
one line, not a traceback."""
from __future__ import annotations

import os
import subprocess
import sys

from dogsearch.core.settings import unknown_settings
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.settings import GatewaySettings


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | env
    return subprocess.run([sys.executable, "-m", "dogsearch.cli", *args], env=environ, capture_output=True,
                          text=True, timeout=120)


def test_a_variable_under_a_services_prefix_that_no_setting_reads_is_named():
    environ = {"DOGSEARCH_GATEWAY_EMBEDER_URL": "http://x", "DOGSEARCH_JOBS_BATCH_SIZE": "8",
               "dogsearch_gateway_max_k": "5", "DOGSEARCH_TEST_REDIS_DB": "12", "DOGSEARCH_BROKER_URL": "redis://x",
               "DOGSEARCH_JOBS_NO_SUCH_THING": "1", "HOME": "/root",
               # Kubernetes' service links, for Services named dogsearch-gateway and dogsearch-search: not settings
               "DOGSEARCH_GATEWAY_SERVICE_HOST": "10.0.0.1", "DOGSEARCH_GATEWAY_SERVICE_PORT_HTTP": "8000",
               "DOGSEARCH_SEARCH_PORT": "tcp://10.0.0.2:8002", "DOGSEARCH_SEARCH_PORT_8002_TCP_ADDR": "10.0.0.2",
               "DOGSEARCH_SEARCH_PORT_8002_TCP_PROTO": "tcp"}
    assert unknown_settings((GatewaySettings, JobsSettings), environ) == [
        "DOGSEARCH_GATEWAY_EMBEDER_URL (did you mean DOGSEARCH_GATEWAY_EMBEDDER_URL?)", "DOGSEARCH_JOBS_NO_SUCH_THING"]
    # the jobs' settings log nothing of their own (a worker logs as the gateway's say): a LOG_LEVEL there is named,
    # not taken and ignored
    assert unknown_settings((GatewaySettings, JobsSettings), {"DOGSEARCH_JOBS_LOG_LEVEL": "DEBUG"}) == [
        "DOGSEARCH_JOBS_LOG_LEVEL"]


def test_serve_and_worker_stop_on_a_misspelt_setting():
    for args in (("serve", "gateway", "--port", "1"), ("worker",)):
        done = run(*args, DOGSEARCH_GATEWAY_EMBEDER_URL="http://127.0.0.1:9", DOGSEARCH_BROKER_URL="redis://127.0.0.1:1")
        assert done.returncode != 0
        assert "did you mean DOGSEARCH_GATEWAY_EMBEDDER_URL?" in done.stderr, done.stderr[-2000:]


def test_a_list_setting_not_written_as_json_is_one_line():
    done = run("serve", "gateway", "--port", "1", DOGSEARCH_JOBS_ALLOWED_ROOTS="/imports")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "allowed_roots" in done.stderr and "written as JSON" in done.stderr


def test_a_gateways_data_dir_holds_its_job_state_unless_the_jobs_setting_says_where(tmp_path, monkeypatch):
    # `serve gateway --data-dir` put the jobs under it even with DOGSEARCH_JOBS_DATA_DIR set, where the workers
    # (which take no --data-dir) read them.
    from dogsearch.cli import parser
    from dogsearch.cli.serve import build_app

    for name in [n for n in os.environ if n.startswith("DOGSEARCH_")]:
        monkeypatch.delenv(name)
    args = parser().parse_args(["serve", "gateway", "--data-dir", str(tmp_path / "photos")])
    assert build_app(args).state.parts.jobs.settings.data_dir == tmp_path / "photos" / "jobs"
    monkeypatch.setenv("DOGSEARCH_JOBS_DATA_DIR", str(tmp_path / "shared-jobs"))
    assert build_app(args).state.parts.jobs.settings.data_dir == tmp_path / "shared-jobs"


def test_serve_logs_at_the_level_and_in_the_format_the_services_settings_say(tmp_path):
    # LOG_LEVEL and LOG_FORMAT were read by no one: every service logged INFO in JSON whatever they said
    from tests.processes import Process, free_port, http_ready

    def started_log(name: str, **env: str) -> str:
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | env
        cmd = [sys.executable, "-m", "dogsearch.cli", "serve", "search", "--port", str(port), "--data-dir",
               str(tmp_path / name)]
        process = Process(name, cmd, environ, tmp_path / f"{name}.log", http_ready(f"http://127.0.0.1:{port}"))
        try:
            process.start().wait_ready(60)
        finally:
            process.stop()
        return process.tail()

    assert " INFO dogsearch.search store open" in started_log("text", DOGSEARCH_SEARCH_LOG_FORMAT="text")
    quiet = started_log("quiet", DOGSEARCH_SEARCH_LOG_LEVEL="WARNING")
    assert "store open" not in quiet and "Application startup complete" not in quiet, quiet

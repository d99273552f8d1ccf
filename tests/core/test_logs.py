"""The JSON log lines: one object a line, `extra=` fields kept, uvicorn's colour-coded copy of the message left out,
and the HTTP client's line per call between services kept out at INFO."""
from __future__ import annotations

import json
import logging

from dogsearch.core.logs import JsonFormatter, configure_logging


def test_a_line_keeps_extra_fields_but_not_the_colour_coded_copy():
    record = logging.makeLogRecord({"name": "uvicorn.error", "levelname": "INFO", "msg": "Started server process",
                                    "color_message": "Started server process [\x1b[36m%d\x1b[0m]", "path": "/v1"})
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "Started server process" and line["path"] == "/v1" and "color_message" not in line


def test_info_keeps_our_lines_and_quiets_the_http_clients(capsys):
    root, saved = logging.getLogger(), logging.getLogger().handlers[:]
    level, httpx_level = root.level, logging.getLogger("httpx").level
    try:
        configure_logging("INFO")
        logging.getLogger("httpx").info('HTTP Request: POST http://search/v1/points "HTTP/1.1 200 OK"')
        logging.getLogger("dogsearch.gateway").info("stored")
        logging.getLogger("httpx").warning("connection reset")
        lines = [json.loads(line)["msg"] for line in capsys.readouterr().err.splitlines()]
        assert lines == ["stored", "connection reset"]
        configure_logging("DEBUG")  # asked for everything: the calls too
        logging.getLogger("httpx").info("HTTP Request: GET http://embedder/readyz")
        assert "GET http://embedder/readyz" in capsys.readouterr().err
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(httpx_level)

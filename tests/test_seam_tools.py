"""The seam's shared handling: a missing program named once (``requires=Tool``), per-run facts,
and controller-side side effects (GET, file writes, other changes) that obey --dry."""

from __future__ import annotations

import http.server
import threading

import pytest

from ragops.backup.errors import ResticNotFoundError
from ragops.backup.repository import Repo, detect_version
from ragops.errors import ToolNotFoundError
from ragops.seam import Tool, controller_write, http_get, write_local_file
from tests.fixtures.fleet_helpers import make_target


def test_a_missing_program_is_one_error_naming_the_tool_and_its_setting(tmp_path):
    target = make_target(tmp_path)
    tool = Tool("frobnicate", "/nonexistent/frob", "frob.binary")
    with pytest.raises(ToolNotFoundError) as info:
        target.run("/nonexistent/frob --version", requires=tool)
    assert str(info.value) == ("local: frobnicate binary '/nonexistent/frob' not found on the host "
                               "(install frobnicate, or set frob.binary)")
    assert info.value.reason.startswith("frobnicate binary")
    assert target.run("exit 127").exited == 127  # without requires: the caller's result, unchanged
    assert target.run("echo ok", requires=tool).stdout == "ok\n"


def test_restic_missing_raises_restics_own_error_class(tmp_path):
    target = make_target(tmp_path)
    with pytest.raises(ResticNotFoundError, match="restic binary '/nonexistent/restic' not found.*backup.restic"):
        detect_version(target, Repo(url="/tmp/repo", restic="/nonexistent/restic"))


def test_facts_are_learned_once_per_target_and_not_kept_when_unknown(tmp_path):
    target, calls = make_target(tmp_path), []
    assert target.fact("k", lambda: calls.append(1) or "v") == "v"
    assert target.fact("k", lambda: calls.append(1) or "w") == "v"
    assert target.fact("none", lambda: calls.append(1)) is None
    assert target.fact("none", lambda: calls.append(1)) is None
    assert len(calls) == 3
    assert make_target(tmp_path / "again").facts == {}  # a new run (a new Target) asks again


def test_controller_side_changes_are_only_printed_under_dry(tmp_path, capsys):
    path = tmp_path / "records" / "r.md"
    assert write_local_file(path, "x", dry=True, who="h") is False and not path.parent.exists()
    assert controller_write("create S3 bucket b", lambda: pytest.fail("ran under dry"), dry=True, who="h") is None
    assert http_get("http://127.0.0.1:9/x", timeout=1, dry=True, who="h", what="ping start") is None
    err = capsys.readouterr().err
    assert f"(dry run) write {path} (1 bytes)" in err
    assert "(dry run) create S3 bucket b" in err and "(dry run) ping start http://127.0.0.1:9/x" in err
    assert write_local_file(path, "héllo", dry=False) is True and path.read_text(encoding="utf-8") == "héllo"
    assert [p.name for p in path.parent.iterdir()] == ["r.md"]  # no temp file left
    assert controller_write("change", lambda: 42, dry=False) == 42


def test_http_get_returns_the_status_and_never_raises(capsys):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert http_get(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5, dry=False) == 204
    finally:
        server.shutdown()
        server.server_close()
    assert http_get("http://127.0.0.1:9/", timeout=1, dry=False, who="h", what="ping fail") is None
    assert "ping fail failed: ConnectionError" in capsys.readouterr().err

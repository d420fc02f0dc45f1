"""The smoke test decides: a refused connection, a timeout or a 403 is never healthy."""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from molam_agent.errors import SmokeTestError
from molam_agent.smoke import run_smoke_test

from .conftest import GOOD_MIGRATIONS, db_state


class ShopHandler(BaseHTTPRequestHandler):
    """The shop's health endpoint: answers what the installed plugin's ``health`` file says."""

    plugin_dir: Path

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        health = (self.plugin_dir / "health").read_text().strip()
        if health == "sleep":
            time.sleep(3)
            health = "ok"
        status = {"ok": 200, "403": 403, "500": 500, "redirect": 302}.get(health, 500)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/wp-login.php")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def shop(host):
    handler = type("Shop", (ShopHandler,), {"plugin_dir": host.plugin_dir})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/?molam-health=1"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("health", ["403", "sleep", "500", "redirect"])
def test_failing_smoke_url_rolls_back(host, shop, small_release, health):
    host.smoke = {"url": shop, "timeout_s": 1}
    host.write_config()
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0", health=health)
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "success"
    assert "smoke test URL" in out["error"]
    assert host.fingerprint() == before


def test_healthy_smoke_url_commits(host, shop, small_release):
    host.smoke = {"url": shop, "timeout_s": 2}
    host.write_config()
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert host.installed() == "4.0.0"


def test_refused_smoke_url_fails_the_rollback_too(mysql_host, small_release):
    """Nothing listens: the upgrade is undone, but the old version cannot be proven healthy
    either -- exit 2, and the control plane is told the rollback failed."""
    mysql_host.smoke = {"url": f"http://127.0.0.1:{_free_port()}/health", "timeout_s": 1}
    mysql_host.write_config()
    before, before_db = mysql_host.fingerprint(), db_state(mysql_host.db_url)
    zip_path, _ = small_release("4.0.0", migrations=GOOD_MIGRATIONS)
    mysql_host.publish(zip_path, "4.0.0")

    rc, out = mysql_host.run("upgrade")

    assert rc == 2, out
    assert out["rollback_status"] == "failed"
    assert "unreachable" in out["error"]
    # Files and tables were still put back.
    assert mysql_host.fingerprint() == before
    after = db_state(mysql_host.db_url)
    after.pop("molam_agent_migrations")
    assert after == before_db
    [complete] = mysql_host.cp.state.posts("/complete")
    assert complete["success"] is False and "smoke" in complete["error_message"]


def test_failing_smoke_command_rolls_back(host, small_release):
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0", health="broken")
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "exited with status 1" in out["error"]
    assert host.fingerprint() == before
    assert not (host.plugin_dir.parent / ".molam-agent" / "molam-form" / "maintenance.json").exists()


def test_smoke_command_sees_plugin_dir_and_version(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        "import os, sys\nsys.exit(0 if os.environ['MOLAM_VERSION'] == '4.0.0' and os.path.isdir(os.environ['MOLAM_PLUGIN_DIR']) else 3)\n"
    )
    assert "exited 0" in run_smoke_test(f"{sys.executable} {script}", None, tmp_path, "4.0.0", 5)
    with pytest.raises(SmokeTestError, match="status 3"):
        run_smoke_test(f"{sys.executable} {script}", None, tmp_path, "3.9.0", 5)


def test_smoke_command_timeout_is_a_failure(tmp_path):
    with pytest.raises(SmokeTestError, match="timed out"):
        run_smoke_test("sleep 5", None, tmp_path, "4.0.0", 0.5)


def test_smoke_url_refused_is_a_failure(tmp_path):
    with pytest.raises(SmokeTestError, match="unreachable"):
        run_smoke_test(None, f"http://127.0.0.1:{_free_port()}/", tmp_path, "4.0.0", 1)

"""The agent against the real Django control plane (pytest-django's ``live_server``).

The plugin credential comes from the project's own ``create_api_client`` command; ops
register the release and start the rollout over the same REST API; the agent runs as a
separate process and everything it reports is read back from the control plane's tables.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command

from .builders import sign_release
from .conftest import (
    BROKEN_MIGRATIONS,
    GOOD_MIGRATIONS,
    MERCHANT,
    Host,
    build_plugin,
    create_database,
    db_state,
)

pytestmark = pytest.mark.django_db(transaction=True)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class LiveControlPlane:
    """The live server's API URL, plus a static file server for release packages."""

    def __init__(self, live_server, files_dir) -> None:
        self.live_url = live_server.url
        self.files = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(files_dir)))
        threading.Thread(target=self.files.serve_forever, daemon=True).start()
        self.state = type("S", (), {"files_dir": files_dir})()

    @property
    def api_url(self) -> str:
        return f"{self.live_url}/api/plugins/"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.files.server_address[1]}/{name}"

    def stop(self) -> None:
        self.files.shutdown()
        self.files.server_close()


def _token(name: str, role: str, merchant: str | None = None) -> str:
    out = io.StringIO()
    args = [name, "--role", role] + (["--merchant-id", merchant] if merchant else [])
    call_command("create_api_client", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def _ops(cp: LiveControlPlane, token: str, method: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        cp.api_url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def live_host(live_server, tmp_path):
    files = tmp_path / "www"
    files.mkdir()
    cp = LiveControlPlane(live_server, files)
    url, cleanup = create_database("mysql", tmp_path, rows=2000)
    plugins = tmp_path / "wp-content" / "plugins"
    plugins.mkdir(parents=True)
    host = Host(
        tmp=tmp_path,
        cp=cp,
        plugin_dir=plugins / "molam-form",
        state_dir=tmp_path / "state",
        releases_dir=files,
        db_url=url,
    )
    build_plugin(host.plugin_dir, "3.9.0")
    plugin_token = _token("merchant-a-woocommerce", "plugin", MERCHANT)
    host.write_config(control_plane={"token": plugin_token})
    host.plugin_token = plugin_token
    host.ops_token = _token("ops-alice", "ops_plugins")
    yield host
    cp.stop()
    cleanup()


def _release_and_rollout(host, small_release, migrations) -> None:
    zip_path, sha = small_release("4.0.0", migrations=migrations)
    (host.releases_dir / zip_path.name).write_bytes(zip_path.read_bytes())
    cp = host.cp
    _ops(
        cp,
        host.ops_token,
        "POST",
        "releases",
        {
            "plugin_name": "woocommerce",
            "version": "4.0.0",
            "download_url": cp.file_url(zip_path.name),
            "sha256": sha,
            "signature": sign_release(zip_path),
        },
    )
    _ops(
        cp,
        host.ops_token,
        "POST",
        "rollouts",
        {"plugin_name": "woocommerce", "version": "4.0.0", "percentage": 100, "strategy": "random"},
    )


def test_case_1_against_the_control_plane(live_host, small_release):
    from backups.models import PluginBackup
    from rollbacks.models import RollbackHistory, UpgradeLog

    _release_and_rollout(live_host, small_release, GOOD_MIGRATIONS)

    rc, out = live_host.run("upgrade")

    assert rc == 0, out
    assert out["status"] == "success" and out["rollback_status"] == "not_required"
    assert live_host.installed() == "4.0.0"
    assert not list((live_host.state_dir / "outbox").glob("*.json")), "every report was accepted"
    [log] = UpgradeLog.objects.filter(merchant_id=MERCHANT, plugin_name="woocommerce")
    assert (log.from_version, log.to_version, log.status) == ("3.9.0", "4.0.0", "success")
    [backup] = PluginBackup.objects.filter(merchant_id=MERCHANT)
    assert backup.backup_status == "completed" and backup.version == "3.9.0"
    assert backup.sha256 and backup.backup_size_bytes > 0
    assert not RollbackHistory.objects.exists()


def test_case_2_against_the_control_plane(live_host, small_release):
    from rollbacks.models import RollbackHistory, UpgradeLog

    before_tree, before_db = live_host.fingerprint(), db_state(live_host.db_url)
    _release_and_rollout(live_host, small_release, BROKEN_MIGRATIONS)

    rc, out = live_host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "success"
    assert live_host.fingerprint() == before_tree
    after = db_state(live_host.db_url)
    after.pop("molam_agent_migrations")
    assert after == before_db
    assert not list((live_host.state_dir / "outbox").glob("*.json")), "every report was accepted"
    [log] = UpgradeLog.objects.filter(merchant_id=MERCHANT)
    assert log.status == "rolled_back"
    assert log.rollback_status == "success" and log.rollback_version == "3.9.0"
    [rollback] = RollbackHistory.objects.filter(merchant_id=MERCHANT)
    assert rollback.rollback_trigger == "automatic"
    assert (rollback.from_version, rollback.to_version) == ("4.0.0", "3.9.0")
    assert rollback.success is True and rollback.db_restored is True
    assert rollback.files_restored == out["files_restored"] > 0
    assert rollback.duration_ms is not None and rollback.completed_at is not None


def test_case_3_operator_forced_rollback_through_the_control_plane(live_host, small_release):
    from rollbacks.models import RollbackHistory

    before_tree = live_host.fingerprint()
    _release_and_rollout(live_host, small_release, GOOD_MIGRATIONS)
    rc, out = live_host.run("upgrade")
    assert rc == 0, out

    forced = _ops(
        live_host.cp,
        live_host.ops_token,
        "POST",
        "rollback/initiate",
        {
            "merchant_id": MERCHANT,
            "plugin_name": "woocommerce",
            "from_version": "4.0.0",
            "to_version": "3.9.0",
            "trigger": "operator_forced",
            "reason": "Performance degradation reported",
        },
    )

    rc, out = live_host.run("upgrade")

    assert rc == 0, out
    assert out["rollback_status"] == "success"
    assert live_host.installed() == "3.9.0"
    assert live_host.fingerprint() == before_tree
    rollback = RollbackHistory.objects.get(rollback_id=forced["rollback_id"])
    assert rollback.rollback_trigger == "operator_forced"
    assert rollback.success is True and rollback.db_restored is True and rollback.completed_at
    assert RollbackHistory.objects.count() == 1  # completed the operator's rollback, no new one


class LossyProxy:
    """Forwards to the live server; the answers to the first ``lose`` writes never come back
    (the write happened, the connection drops) -- the agent must resend with the same key."""

    def __init__(self, target: str, lose: int) -> None:
        self.lose = lose
        self.forwarded: list[tuple[str, str, str | None]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type", "idempotency-key", "accept")
                }
                req = urllib.request.Request(
                    target + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        status, payload = resp.status, resp.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                proxy.forwarded.append((self.command, self.path, headers.get("Idempotency-Key")))
                if self.command != "GET" and proxy.lose > 0:
                    proxy.lose -= 1
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/plugins/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_lost_answers_are_resent_and_recorded_exactly_once(live_host, small_release):
    from backups.models import PluginBackup
    from rollbacks.models import RollbackHistory, UpgradeLog

    _release_and_rollout(live_host, small_release, BROKEN_MIGRATIONS)
    proxy = LossyProxy(live_host.cp.live_url, lose=6)  # every report's first answer is lost
    try:
        live_host.write_config(control_plane={"url": proxy.api_url, "token": live_host.plugin_token})

        rc, out = live_host.run("upgrade")
        assert rc == 1 and out["rollback_status"] == "success", out
        for _ in range(3):  # later runs drain what is left
            if not list((live_host.state_dir / "outbox").glob("*.json")):
                break
            live_host.run("recover")
    finally:
        proxy.stop()

    assert not list((live_host.state_dir / "outbox").glob("*.json"))
    assert not list((live_host.state_dir / "outbox" / "dead").glob("*.json"))
    writes = [(m, k) for m, _p, k in proxy.forwarded if m != "GET"]
    assert len(writes) > len({k for _m, k in writes})  # some reports really were sent twice...
    assert UpgradeLog.objects.filter(merchant_id=MERCHANT).count() == 1  # ...and recorded once
    assert PluginBackup.objects.filter(merchant_id=MERCHANT, backup_status="completed").count() == 1
    [rollback] = RollbackHistory.objects.filter(merchant_id=MERCHANT)
    assert rollback.success is True and rollback.completed_at is not None


def test_a_refused_credential_is_a_configuration_error(live_host):
    live_host.write_config(control_plane={"token": "not-a-valid-token"})

    rc, out = live_host.run("upgrade")

    assert rc == 64
    assert "refused this agent's credential" in out["error"]

"""No way in through a release: extraction, signatures, transport, forced rollbacks.

Each test reproduces one of the attacks of the security review and checks it is now refused.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import urllib.request
import zipfile
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from molam_agent import release as release_mod
from molam_agent.api import ControlPlane
from molam_agent.config import load_config
from molam_agent.errors import ConfigError, ControlPlaneError, UnsafeArchiveError, VerificationError
from molam_agent.release import Release, extract_zip, verify_release
from molam_agent.trust import forced_rollback_refusal
from molam_agent.versions import read_installed_version

from .conftest import MERCHANT
from .test_units import _config


def _symlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


def _chained_symlink_zip(path: Path) -> None:
    """The reproduced escape: ``a -> .``, ``up -> a/a/a/../../..``, then ``up/PWNED.php``.

    ``up`` normalises textually to ``..`` of a directory three levels deep, which a textual
    check inside the tree accepts; on disk it resolves through ``a`` (the tree itself) to the
    tree's parent.
    """
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("molam-form/molam-form.php", "<?php\n/*\n * Version: 4.0.0\n */\n")
        zf.writestr("molam-form/health", "ok\n")
        _symlink(zf, "molam-form/a", ".")
        _symlink(zf, "molam-form/up", "a/a/a/../../..")
        zf.writestr("molam-form/up/PWNED.php", "<?php system($_GET['c']);")


def _pwned(root: Path) -> list[Path]:
    return list(root.rglob("PWNED.php"))


# ------------------------------------------------------------------------------ extraction --
def test_chained_symlinks_cannot_write_outside_the_staging_dir(tmp_path):
    zip_path = tmp_path / "evil.zip"
    _chained_symlink_zip(zip_path)

    # Three levels deep, so that ``up`` (the tree's ../../..) is tmp_path itself.
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        extract_zip(zip_path, tmp_path / "x" / "y" / "tree", 1 << 20)

    assert not (tmp_path / "PWNED.php").exists()
    assert not _pwned(tmp_path)


def test_every_write_refuses_to_traverse_a_symlink(tmp_path):
    # Second line of defence: even if a symlink were in the staging dir (put there by anything),
    # directories are opened with O_NOFOLLOW relative to their parent, so it is not followed.
    root = tmp_path / "tree"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "up")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(UnsafeArchiveError, match="cannot be placed"):
            release_mod._open_dir(fd, ["up", "x"], "up/x/PWNED.php")
    finally:
        os.close(fd)
    assert list(outside.iterdir()) == []


def test_special_files_are_refused(tmp_path):
    zip_path = tmp_path / "fifo.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        info = zipfile.ZipInfo("p/pipe")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, "")
    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        extract_zip(zip_path, tmp_path / "out", 1 << 20)


def test_upgrade_with_the_chained_symlink_package_changes_nothing(host):
    before = host.fingerprint()
    zip_path = host.tmp / "evil.zip"
    _chained_symlink_zip(zip_path)
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "symlink" in out["error"]
    assert host.fingerprint() == before
    assert not (host.plugin_dir.parent / "PWNED.php").exists()  # where staging-<tx>/../../.. is
    assert not _pwned(host.tmp)


def test_dry_run_extracts_nothing_outside_its_throwaway_dir(host):
    zip_path = host.tmp / "evil.zip"
    _chained_symlink_zip(zip_path)
    host.publish(zip_path, "4.0.0")
    before = host.fingerprint()

    rc, out = host.run("upgrade", "--dry-run")

    assert rc == 1, out
    assert out["dry_run"] is True and "symlink" in out["error"]
    assert not (host.plugin_dir.parent / ".molam-agent" / "PWNED.php").exists()  # dryrun-<id>/tree/../../..
    assert not _pwned(host.tmp)
    assert host.fingerprint() == before
    work = host.plugin_dir.parent / ".molam-agent" / host.plugin_dir.name
    assert not [p for p in work.iterdir() if p.name.startswith("dryrun-")]


def test_a_version_symlink_cannot_read_outside_the_tree(tmp_path):
    secret = tmp_path / "agent.toml"
    secret.write_text('token = "s3cr3t-token"\n')
    tree = tmp_path / "plugins" / "molam-form"
    tree.mkdir(parents=True)
    os.symlink("../../agent.toml", tree / "VERSION")

    with pytest.raises(VerificationError) as exc:
        read_installed_version(tree, "file:VERSION")

    assert "outside the plugin directory" in str(exc.value)
    assert "s3cr3t" not in str(exc.value)


def test_an_invalid_version_file_is_not_echoed(tmp_path):
    (tmp_path / "VERSION").write_text('[control_plane]\ntoken = "s3cr3t-token"\n')
    with pytest.raises(VerificationError) as exc:
        read_installed_version(tmp_path, "file:VERSION")
    assert "s3cr3t" not in str(exc.value) and "valid version" in str(exc.value)


# ------------------------------------------------------------------------------ signatures --
def test_a_config_without_public_key_is_refused(tmp_path):
    path = _config(tmp_path, release={"public_key": ""})
    with pytest.raises(ConfigError, match="release.public_key is required"):
        load_config(str(path), {})


def test_a_malformed_public_key_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="release.public_key"):
        load_config(str(_config(tmp_path, release={"public_key": "bm90IGEga2V5"})), {})


def test_a_programmatic_config_without_key_still_fails_closed(tmp_path, small_release):
    # Config built in code (no validation): verification itself refuses, it does not skip.
    cfg = load_config(str(_config(tmp_path)), {})
    cfg = type(cfg)(**{**cfg.__dict__, "public_key": None})
    zip_path, sha = small_release("4.0.0")
    with pytest.raises(VerificationError, match="no release.public_key"):
        verify_release(zip_path, Release("4.0.0", "https://x.example/p.zip", sha), cfg)


@pytest.mark.parametrize(("value", "allowed"), [("true", True), ("yes", True), ("0", False), ("maybe", None)])
def test_allow_unsigned_from_the_environment(tmp_path, value, allowed):
    path = _config(tmp_path, release={"public_key": ""})
    env = {"MOLAM_AGENT_RELEASE_ALLOW_UNSIGNED": value}
    if allowed:
        cfg = load_config(str(path), env)
        assert cfg.allow_unsigned is True and cfg.public_key is None
    else:
        with pytest.raises(
            ConfigError, match="public_key is required" if allowed is False else "true or false"
        ):
            load_config(str(path), env)


def test_allow_unsigned_installs_and_warns_on_every_run(host, small_release):
    host.public_key = None
    host.write_config(release={"allow_unsigned": True})
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0", signature=None)

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert host.installed() == "4.0.0"
    assert "RELEASE SIGNATURES ARE NOT CHECKED" in out["_stderr"]
    rc, out = host.run("status")
    assert rc == 0 and "RELEASE SIGNATURES ARE NOT CHECKED" in out["_stderr"]


def test_allow_unsigned_does_not_excuse_a_missing_signature_when_a_key_is_set(host, small_release):
    host.write_config(release={"allow_unsigned": True})
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0", signature=None)

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "not signed" in out["error"]
    assert host.fingerprint() == before


# ------------------------------------------------------------------------------- transport --
@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://ops.molam.example/api/plugins/", False),
        ("http://10.0.0.5/api/plugins/", False),
        ("https://ops.molam.example/api/plugins/", True),
        ("http://127.0.0.1:8000/api/plugins/", True),
        ("http://127.8.9.10/api/plugins/", True),
        ("http://localhost:8000/api/plugins/", True),
        ("http://shop.localhost:8000/api/plugins/", False),
        ("ftp://ops.molam.example/api/plugins/", False),
        ("http://[::1]:8000/api/plugins/", True),
    ],
)
def test_the_control_plane_must_be_https_except_on_loopback(tmp_path, url, accepted):
    path = _config(tmp_path, control_plane={"url": url})
    if accepted:
        assert load_config(str(path), {}).api_url == url
    else:
        with pytest.raises(ConfigError, match="control_plane.url: .* https"):
            load_config(str(path), {})


def test_a_plain_http_download_url_is_refused_before_any_request(host, small_release):
    before = host.fingerprint()
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    host.cp.state.decision["release"]["download_url"] = "http://downloads.molam.example/p.zip"

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "https is required" in out["error"]
    assert host.fingerprint() == before


class _Recorder(BaseHTTPRequestHandler):
    """Answers JSON, or redirects where ``redirects`` says; records every request's headers."""

    seen: list[dict[str, str]]
    redirects: dict[str, str]

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        self.seen.append({"path": path, **{k.lower(): v for k, v in self.headers.items()}})
        if path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"should_upgrade": False, "reason": "served by " + path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def two_origins():
    """Two real HTTP servers on loopback, on different ports: two origins."""
    servers = []
    for _ in range(2):
        handler = type("H", (_Recorder,), {"seen": [], "redirects": {}})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_the_token_is_not_forwarded_to_another_origin(two_origins):
    a, b = two_origins
    route = "/api/plugins/rollouts/woocommerce/should-upgrade"
    a.RequestHandlerClass.redirects[route] = _base(b) + "/elsewhere"

    # urllib on its own forwards the bearer token to the other origin: the bug.
    req = urllib.request.Request(_base(a) + route, headers={"Authorization": "Bearer plugin-token"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    assert b.RequestHandlerClass.seen[-1]["authorization"] == "Bearer plugin-token"
    b.RequestHandlerClass.seen.clear()

    answer = ControlPlane(_base(a) + "/api/plugins/", "plugin-token", 5).should_upgrade(
        "woocommerce", MERCHANT, "3.9.0", None, None
    )

    assert answer["reason"] == "served by /elsewhere"
    assert a.RequestHandlerClass.seen[-1]["authorization"] == "Bearer plugin-token"
    [at_b] = b.RequestHandlerClass.seen
    assert "authorization" not in at_b


def test_the_token_follows_a_redirect_within_the_same_origin(two_origins):
    a, _b = two_origins
    a.RequestHandlerClass.redirects["/api/plugins/releases"] = "/api/plugins/releases/"

    ControlPlane(_base(a) + "/api/plugins/", "plugin-token", 5).request("GET", "releases")

    assert [r["path"] for r in a.RequestHandlerClass.seen] == [
        "/api/plugins/releases",
        "/api/plugins/releases/",
    ]
    assert all(r["authorization"] == "Bearer plugin-token" for r in a.RequestHandlerClass.seen)


def test_a_redirect_to_plain_http_elsewhere_is_refused(two_origins):
    a, _b = two_origins
    a.RequestHandlerClass.redirects["/api/plugins/releases"] = "http://ops.molam.example/api/plugins/releases"

    with pytest.raises(ControlPlaneError, match="refused redirect"):
        ControlPlane(_base(a) + "/api/plugins/", "plugin-token", 5).request("GET", "releases")


# ------------------------------------------------------------------------ forced rollbacks --
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _forced(from_version="4.0.0", to_version="3.9.0", age=timedelta(minutes=5), **extra):
    item = {
        "rollback_id": "7d2b7c1e-3c1e-4a52-9d0c-6b1d2f0e9a11",
        "merchant_id": MERCHANT,
        "plugin_name": "woocommerce",
        "from_version": from_version,
        "to_version": to_version,
        "trigger": "operator_forced",
        "reason": "Performance degradation reported",
        "created_at": (NOW - age).isoformat() if age is not None else None,
    }
    item.update(extra)
    return item


@pytest.mark.parametrize(
    ("item", "refused"),
    [
        (_forced(), None),
        (_forced(created_at="2026-11-29T07:30:00Z"), None),
        (_forced(created_at="2026-11-29T07:30:00"), None),  # naive: UTC
        (_forced(from_version="4.0"), None),  # compared as versions
        (_forced(from_version="3.5.0"), "issued for version 3.5.0 but 4.0.0 is installed"),
        (_forced(from_version=None), "issued for version (none)"),
        (_forced(age=timedelta(hours=25)), "older than"),
        (_forced(age=None), "no valid created_at"),
        (_forced(created_at="yesterday"), "no valid created_at"),
        (_forced(to_version="4.0.0", from_version="9.9.9", age=timedelta(days=9)), None),  # no-op
    ],
)
def test_forced_rollback_rules(item, refused):
    reason = forced_rollback_refusal(item, "4.0.0", 24 * 3600, now=NOW)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def _upgraded(host, small_release, **release_cfg):
    host.write_config(release=release_cfg) if release_cfg else host.write_config()
    zip_path, _ = small_release("4.0.0")
    host.publish(zip_path, "4.0.0")
    rc, out = host.run("upgrade")
    assert rc == 0 and host.installed() == "4.0.0", out
    host.publish(zip_path, "4.0.0", should=False)


def _pending(host, **kwargs):
    item = _forced(**kwargs)
    item["created_at"] = (
        kwargs.get("created_at")
        or (datetime.now(UTC) - (kwargs.get("age") or timedelta(minutes=5))).isoformat()
    )
    host.cp.state.pending = [item]
    return item["rollback_id"]


def test_a_forced_rollback_for_another_installed_version_is_refused_and_completed_as_failed(
    host, small_release
):
    _upgraded(host, small_release)
    before = host.fingerprint()
    rid = _pending(host, from_version="4.1.0")

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert host.installed() == "4.0.0" and host.fingerprint() == before
    done = host.cp.state.rollbacks[rid]
    assert done["completed"] and done["success"] is False
    assert "issued for version 4.1.0 but 4.0.0 is installed" in done["error_message"]
    assert "forced rollback refused" in out["_stderr"]
    host.run("upgrade")  # completed: not pending any more, not refused twice
    assert len(host.cp.state.posts(f"rollback/{rid}/complete")) == 1


def test_a_stale_forced_rollback_is_refused(host, small_release):
    _upgraded(host, small_release)
    rid = _pending(host, age=timedelta(hours=30))

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert host.installed() == "4.0.0"
    done = host.cp.state.rollbacks[rid]
    assert done["success"] is False and "older than" in done["error_message"]


def test_the_forced_rollback_age_limit_is_configurable(host, small_release):
    _upgraded(host, small_release, forced_rollback_max_age_s=3600)
    rid = _pending(host, age=timedelta(hours=2))
    host.run("upgrade")
    assert host.installed() == "4.0.0"
    assert "3600 s" in host.cp.state.rollbacks[rid]["error_message"]

    rid = _pending(host, age=timedelta(minutes=30), rollback_id="0b5a3c9e-1111-4a52-9d0c-6b1d2f0e9a11")
    rc, out = host.run("upgrade")
    assert rc == 0 and out["rollback_status"] == "success", out
    assert host.installed() == "3.9.0"
    assert host.cp.state.rollbacks[rid]["success"] is True

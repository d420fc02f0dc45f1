"""Building blocks: versions, configuration, archives, encryption, outbox, swaps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from molam_agent import crypto, fsutil
from molam_agent.cli import main
from molam_agent.config import load_config
from molam_agent.errors import AgentError, ConfigError, UnsafeArchiveError, VerificationError
from molam_agent.release import extract_zip
from molam_agent.versions import Version, read_installed_version

from .builders import signing_public_key
from .conftest import MERCHANT, REPO, to_toml


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("3.9.0", "3.10.0"),
        ("4.0.0-rc.1", "4.0.0"),
        ("1.8.0-rc.1", "1.8.0-rc.2"),
        ("1.8.0-alpha", "1.8.0-beta"),
        ("2", "2.0.1"),
    ],
)
def test_versions_compare_as_versions(low, high):
    assert Version(low) < Version(high)
    assert Version("4.0") == Version("4.0.0") == Version("4.0.0+build.7")


@pytest.mark.parametrize("bad", ["", "v4", "4..0", "4.0.0 beta", "x" * 70])
def test_invalid_versions_are_refused(bad):
    with pytest.raises(VerificationError):
        Version(bad)


def test_version_from_wordpress_header_and_file(tmp_path):
    (tmp_path / "p.php").write_text("<?php\n/**\n * Plugin Name: X\n * Version:   4.2.1\n */\n")
    (tmp_path / "VERSION").write_text("5.0.0-rc.1\n")
    assert read_installed_version(tmp_path, "wp-header:p.php") == "4.2.1"
    assert read_installed_version(tmp_path, "file:VERSION") == "5.0.0-rc.1"


def _config(tmp_path: Path, **override) -> Path:
    cfg = {
        "control_plane": {
            "url": "https://ops.molam.example/api/plugins",
            "token": "t",
            "merchant_id": MERCHANT,
        },
        "plugin": {
            "name": "woocommerce",
            "dir": str(tmp_path / "plugin"),
            "version_from": "wp-header:molam-form.php",
        },
        "storage": {"state_dir": str(tmp_path / "state")},
        "release": {"public_key": signing_public_key()},
    }
    for section, values in override.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp_path / "agent.toml"
    path.write_text(to_toml(cfg))
    return path


def test_config_file_with_env_overrides(tmp_path):
    path = _config(tmp_path, database={"url": "sqlite:///tmp/x.db", "tables": ["a"]})
    env = {
        "MOLAM_AGENT_CONTROL_PLANE_TOKEN": "from-env",
        "MOLAM_AGENT_STORAGE_RETENTION_DAYS": "7",
        "MOLAM_AGENT_DATABASE_TABLES": "wp_molam_orders, wp_molam_settings",
        "MOLAM_AGENT_DATABASE_OPTIONS": '{"table": "wp_options", "where": "option_name = \'x\'"}',
    }
    cfg = load_config(str(path), env)
    assert cfg.token == "from-env"
    assert cfg.retention_days == 7
    assert cfg.db_tables == ("wp_molam_orders", "wp_molam_settings")
    assert cfg.db_options.table == "wp_options"
    assert cfg.api_url.endswith("/api/plugins/")


def test_config_path_from_environment_and_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("secret-token\n")
    path = _config(tmp_path, control_plane={"token": "", "token_file": str(token)})
    cfg = load_config(None, {"MOLAM_AGENT_CONFIG": str(path)})
    assert cfg.token == "secret-token"


@pytest.mark.parametrize(
    "override",
    [
        {"control_plane": {"merchant_id": "not-a-uuid"}},
        {"plugin": {"name": "Bad Name"}},
        {"plugin": {"dir": "relative/path"}},
        {"storage": {"retention_day": 3}},
        {"database": {"url": "oracle://x", "tables": []}},
        {"database": {"url": "mysql://x/y", "tables": ["wp_x; DROP TABLE y"]}},
        {"plugin": {"version_from": "header:x"}},
    ],
)
def test_bad_config_is_refused(tmp_path, override):
    with pytest.raises(ConfigError):
        load_config(str(_config(tmp_path, **override)), {})


def test_usage_and_config_errors_exit_64(tmp_path, capsys):
    assert main(["upgrade", "--config", str(tmp_path / "missing.toml")]) == 64
    assert main(["rollback", "--to", "not a version", "--config", str(_config(tmp_path))]) == 64
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 64


def test_the_agent_imports_nothing_of_django():
    code = (
        "import sys, molam_agent.cli, molam_agent.engine;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework')];"
        "sys.exit(1 if bad else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0


def test_console_script_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "molam_agent", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0 and "rollback" in proc.stdout


def test_encrypted_archive_round_trip_and_tamper_detection(tmp_path):
    key = os.urandom(32)
    plain = os.urandom(3 * crypto.CHUNK + 123)
    out = io.BytesIO()
    writer = crypto.EncryptingWriter(out, key)
    writer.write(plain[:1000])
    writer.write(plain[1000:])
    writer.close()
    blob = out.getvalue()
    assert blob.startswith(b"MOLAMBK1")
    assert b"".join(crypto.decrypt_stream(io.BytesIO(blob), key)) == plain
    with pytest.raises(AgentError):
        b"".join(crypto.decrypt_stream(io.BytesIO(blob), os.urandom(32)))
    tampered = bytearray(blob)
    tampered[100] ^= 1
    with pytest.raises(AgentError):
        b"".join(crypto.decrypt_stream(io.BytesIO(bytes(tampered)), key))
    # Dropping the last chunk is detected: the new last chunk was not sealed as last.
    first_len = int.from_bytes(blob[16 + 12 : 16 + 16], "big")
    truncated = blob[: 16 + 16 + first_len]
    with pytest.raises(AgentError):
        b"".join(crypto.decrypt_stream(io.BytesIO(truncated), key))


def test_backup_key_file_is_created_once(tmp_path):
    path = tmp_path / "etc" / "backup.key"
    key = crypto.load_or_create_key(path)
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert crypto.load_or_create_key(path) == key
    path.write_bytes(b"short")
    with pytest.raises(AgentError):
        crypto.load_or_create_key(path)


def test_zip_bomb_with_lying_headers_is_stopped_while_writing(tmp_path):
    zip_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/VERSION", "1.0.0")
        zf.writestr("a/big.bin", b"\0" * (8 << 20))
    # Rewrite the declared uncompressed size in both headers to 1 byte.
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as zf:
        info = zf.getinfo("a/big.bin")
    local = info.header_offset
    data[local + 22 : local + 26] = (1).to_bytes(4, "little")
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (1).to_bytes(4, "little")
    zip_path.write_bytes(bytes(data))
    with pytest.raises((UnsafeArchiveError, VerificationError, zipfile.BadZipFile)):
        extract_zip(zip_path, tmp_path / "out", 1 << 20)


def test_duplicate_members_are_refused(tmp_path):
    zip_path = tmp_path / "dup.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a/x.php", "1")
        zf.writestr("a/./x.php", "2")
    with pytest.raises(UnsafeArchiveError):
        extract_zip(zip_path, tmp_path / "out", 1 << 20)


@pytest.mark.parametrize("no_renameat2", [False, True])
def test_swap_dirs_exchanges_trees(tmp_path, monkeypatch, no_renameat2):
    monkeypatch.setattr(fsutil, "_renameat2_checked", False)
    if no_renameat2:
        monkeypatch.setenv("MOLAM_AGENT_NO_RENAMEAT2", "1")
    live, new, aside = tmp_path / "live", tmp_path / "new", tmp_path / "aside"
    live.mkdir()
    new.mkdir()
    (live / "v").write_text("old")
    (new / "v").write_text("new")
    fsutil.swap_dirs(live, new, aside)
    assert (live / "v").read_text() == "new" and (aside / "v").read_text() == "old"
    assert not new.exists()
    monkeypatch.setattr(fsutil, "_renameat2_checked", False)


def test_atomic_write_leaves_no_temp_file(tmp_path):
    fsutil.atomic_write_json(tmp_path / "j.json", {"a": 1})
    fsutil.atomic_write_json(tmp_path / "j.json", {"a": 2})
    assert fsutil.read_json(tmp_path / "j.json") == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["j.json"]


def test_human_readable_output_of_every_verb(tmp_path, capsys):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "molam-form.php").write_text("<?php\n/*\n * Version: 3.9.0\n */\n")
    path = _config(tmp_path, control_plane={"url": "http://127.0.0.1:9/api/plugins/", "timeout_s": 1})
    assert main(["status", "--config", str(path)]) == 0
    assert "installed_version: 3.9.0" in capsys.readouterr().out
    assert main(["prune", "--config", str(path)]) == 0
    assert capsys.readouterr().out.startswith("success")
    assert main(["recover", "--config", str(path)]) == 0
    assert "nothing to recover" in capsys.readouterr().out
    assert main(["upgrade", "--config", str(path)]) == 0
    assert "control plane unreachable" in capsys.readouterr().out


def test_outbox_buries_a_report_whose_dependency_is_lost(tmp_path):
    from molam_agent.api import ControlPlane
    from molam_agent.outbox import Outbox

    from .controlplane import FakeControlPlane

    cp = FakeControlPlane(tmp_path)
    try:
        box = Outbox(tmp_path / "state", attempts=1)
        box.enqueue("POST", "rollback/{rollback_id}/complete", {"success": True}, depends_on="never-queued")
        box.enqueue("POST", "upgrades", {"status": "success"}, key="later-report")
        stats = box.flush(ControlPlane(cp.api_url, "t", 2))
        assert stats == {"sent": 1, "dead": 1, "pending": 0}
        assert box.result("later-report")["ok"] is True
        [dead] = (tmp_path / "state" / "outbox" / "dead").glob("*.json")
        assert "never-queued" in dead.read_text()
    finally:
        cp.stop()


@pytest.mark.parametrize("engine", ["mysql", "postgresql", "sqlite"])
def test_a_transaction_commits_its_block_and_rolls_back_when_it_raises(tmp_path, engine):
    from molam_agent.db import connect

    from .conftest import create_database

    url, cleanup = create_database(engine, tmp_path, rows=10)
    try:
        with connect(url) as db, connect(url) as other:
            p = db.ph
            set_schema = f"UPDATE wp_molam_settings SET value = {p} WHERE name = 'schema'"
            read_schema = "SELECT value FROM wp_molam_settings WHERE name = 'schema'"
            with db.transaction():
                db.execute(set_schema, ("4",))
            assert other.query(read_schema) == [("4",)]

            with pytest.raises(RuntimeError), db.transaction():
                db.execute(set_schema, ("5",))
                raise RuntimeError("a statement of the block failed")
            assert other.query(read_schema) == [("4",)]
            assert db.query(read_schema) == [("4",)]  # and the session is usable again
    finally:
        cleanup()

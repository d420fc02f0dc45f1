"""A release that fails verification never touches the live plugin."""

from __future__ import annotations

import base64
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from .conftest import ed25519_keypair


def _assert_untouched(host, before: str) -> None:
    assert host.fingerprint() == before
    work = host.plugin_dir.parent / ".molam-agent" / host.plugin_dir.name
    leftovers = [p.name for p in work.iterdir()] if work.exists() else []
    assert not [n for n in leftovers if n.startswith(("staging-", "download-", "failed-"))]
    assert "maintenance.json" not in leftovers
    assert not (host.state_dir / "journal.json").exists()


def test_wrong_checksum_is_refused(host, small_release):
    before = host.fingerprint()
    zip_path, _sha = small_release("4.0.0")
    host.publish(zip_path, "4.0.0", sha256="0" * 64)

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["status"] == "failed" and out["rollback_status"] == "not_required"
    assert "checksum mismatch" in out["error"]
    _assert_untouched(host, before)
    [log] = host.cp.state.posts("upgrades")
    assert log["status"] == "failed" and "checksum" in log["error"]


def test_signed_release_is_installed(host, small_release):
    key, public = ed25519_keypair()
    host.public_key = public
    host.write_config()
    zip_path, sha = small_release("4.0.0")
    host.publish(
        zip_path, "4.0.0", sha256=sha, signature=base64.b64encode(key.sign(zip_path.read_bytes())).decode()
    )

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert host.installed() == "4.0.0"


@pytest.mark.parametrize("signature", ["other-key", "unsigned", "garbage"])
def test_bad_signature_is_refused(host, small_release, signature):
    _key, public = ed25519_keypair()
    other, _ = ed25519_keypair()
    host.public_key = public
    host.write_config()
    before = host.fingerprint()
    zip_path, sha = small_release("4.0.0")
    sig = {
        "other-key": base64.b64encode(other.sign(zip_path.read_bytes())).decode(),
        "unsigned": None,
        "garbage": "not base64 !!",
    }[signature]
    host.publish(zip_path, "4.0.0", sha256=sha, signature=sig)

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "not_required"
    assert "sign" in out["error"]
    _assert_untouched(host, before)


def test_downgrade_is_refused(host, small_release):
    before = host.fingerprint()
    zip_path, _ = small_release("3.8.0")
    host.publish(zip_path, "3.8.0")

    rc, out = host.run("upgrade", "--force")

    assert rc == 1, out
    assert "refusing to downgrade" in out["error"]
    _assert_untouched(host, before)


def test_package_with_another_version_inside_is_refused(host, small_release):
    before = host.fingerprint()
    zip_path, _ = small_release("4.1.0")
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "contains version 4.1.0" in out["error"]
    _assert_untouched(host, before)


def _malicious_zip(path: Path, kind: str) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("molam-form/molam-form.php", "<?php\n/*\n * Version: 4.0.0\n */\n")
        zf.writestr("molam-form/health", "ok\n")
        if kind == "traversal":
            zf.writestr("molam-form/../../../evil.php", "<?php system($_GET['c']);")
        elif kind == "absolute":
            zf.writestr("/tmp/molam-evil.php", "<?php system($_GET['c']);")
        elif kind == "symlink":
            info = zipfile.ZipInfo("molam-form/includes/passwd")
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "../../../../../../etc/passwd")
        elif kind == "bomb":
            # 64 MiB of zeros deflate to ~64 KiB: a ratio no plugin file has.
            zf.writestr("molam-form/assets/bomb.js", b"\0" * (64 << 20))
        elif kind == "oversize":
            zf.writestr("molam-form/assets/big.js", os.urandom(3 << 20))


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "bomb", "oversize"])
def test_malicious_archive_is_refused(host, kind):
    host.write_config(release={"max_unpacked_mb": 2})
    before = host.fingerprint()
    zip_path = host.tmp / f"evil-{kind}.zip"
    _malicious_zip(zip_path, kind)
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert out["rollback_status"] == "not_required"
    assert any(
        w in out["error"] for w in ("escapes", "absolute", "outside", "bomb", "limit", "beyond", "symlink")
    ), out["error"]
    _assert_untouched(host, before)
    assert not (host.tmp / "evil.php").exists()
    assert not (host.tmp / "wp-content" / "evil.php").exists()
    assert not Path("/tmp/molam-evil.php").exists()


def test_release_with_files_at_the_root_is_accepted(host, small_release):
    zip_path, _ = small_release("4.0.0", top_folder=None)
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 0, out
    assert (host.plugin_dir / "includes" / "class-molam-v4.php").exists()


def test_symlink_entries_are_refused_even_inside_the_tree(host, small_release):
    # A plugin needs no symlink, and chains of them defeat textual checks (test_release_trust).
    before = host.fingerprint()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("molam-form/includes/alias.php")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../molam-form.php")
    zip_path, _ = small_release("4.0.0", extra={})
    with zipfile.ZipFile(zip_path, "a") as zf, zipfile.ZipFile(buf) as src:
        for item in src.infolist():
            zf.writestr(item, src.read(item))
    host.publish(zip_path, "4.0.0")

    rc, out = host.run("upgrade")

    assert rc == 1, out
    assert "alias.php" in out["error"] and "symlink" in out["error"]
    _assert_untouched(host, before)

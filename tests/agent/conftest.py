"""Fixtures for the safe-upgrade agent: plugins on disk, release packages, real databases,
and a real HTTP control plane on loopback.

Databases: MariaDB at 127.0.0.1:3306 (root, no password) and PostgreSQL at 127.0.0.1:5432
(postgres, trust). Each test creates and drops its own database with a random name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from molam_agent.db import connect
from molam_agent.fsutil import tree_fingerprint

from .builders import (  # noqa: F401  (re-exported for the test modules)
    BROKEN_MIGRATIONS,
    CONFIG_TABLES,
    EXPAND_MIGRATIONS,
    GOOD_MIGRATIONS,
    MYSQL_SEED,
    PG_SEED,
    RELEASES,
    SNAPSHOT_MIGRATIONS,
    SQLITE_SEED,
    WOO_BYTES,
    WOO_FILES,
    WOO_ROWS,
    build_plugin,
    make_release,
    sign_release,
    signing_public_key,
    up_only,
    write_header,
)
from .controlplane import FakeControlPlane

REPO = Path(__file__).resolve().parents[2]
MERCHANT = "123e4567-e89b-12d3-a456-426614174000"
SMOKE = Path(__file__).with_name("smoke_check.py")
MYSQL_ADMIN = "mysql://root@127.0.0.1:3306/mysql"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def woo_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WooCommerce-sized plugin at 3.9.0, built once per session (read-only)."""
    root = tmp_path_factory.mktemp("woo") / "molam-form"
    return build_plugin(root, "3.9.0", files=WOO_FILES, total_bytes=WOO_BYTES, seed=7)


@pytest.fixture(scope="session")
def woo_releases(tmp_path_factory: pytest.TempPathFactory, woo_tree: Path) -> dict[str, tuple[Path, str]]:
    """WooCommerce-sized 4.0.0 packages: good, and with a failing migration."""
    d = tmp_path_factory.mktemp("woo-releases")
    out = {}
    for name, migs in (("good", GOOD_MIGRATIONS), ("broken-migration", BROKEN_MIGRATIONS)):
        path = d / f"molam-form-4.0.0-{name}.zip"
        out[name] = (path, make_release(path, woo_tree, "4.0.0", migrations=migs))
    return out


# ------------------------------------------------------------------------------ databases --
def _mysql_available() -> bool:
    try:
        connect(MYSQL_ADMIN).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def _pg_available() -> bool:
    try:
        connect(PG_ADMIN).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def create_database(engine: str, tmp_path: Path, rows: int) -> tuple[str, Any]:
    """Create a database with a random name, seeded; return (url, cleanup)."""
    name = f"molam_t_{uuid.uuid4().hex[:12]}"
    if engine == "mysql":
        if not _mysql_available():
            pytest.fail("MariaDB not reachable at 127.0.0.1:3306 (root, no password): start it")
        with connect(MYSQL_ADMIN) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = f"mysql://root@127.0.0.1:3306/{name}"
        with connect(url) as db:
            db._run_script(MYSQL_SEED.format(rows=rows))

        def cleanup() -> None:
            with connect(MYSQL_ADMIN) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name}")

        return url, cleanup
    if engine == "postgresql":
        if not _pg_available():
            pytest.fail("PostgreSQL not reachable at 127.0.0.1:5432 (postgres, trust): start it")
        with connect(PG_ADMIN) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        with connect(url) as db:
            db.execute(PG_SEED.format(rows=rows))

        def cleanup() -> None:
            with connect(PG_ADMIN) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        return url, cleanup
    path = tmp_path / f"{name}.db"
    url = f"sqlite://{path}"
    with connect(url) as db:
        db.conn.executescript(SQLITE_SEED.format(rows=rows))
    return url, lambda: None


PLUGIN_TABLES = ["wp_molam_orders", "wp_molam_settings"]
SIGN = object()  # publish(signature=SIGN): sign with the test key (the default)


def db_state(url: str) -> dict[str, str]:
    """Fingerprint of every table of the plugin, plus its option rows (equal = identical)."""
    with connect(url) as db:
        present = db.tables()
        out = {
            t: db.fingerprint(t)
            for t in [*PLUGIN_TABLES, "wp_molam_refunds", "molam_agent_migrations"]
            if t in present
        }
        rows = db.query(
            "SELECT option_name, option_value FROM wp_options WHERE option_name LIKE 'molam%' ORDER BY option_name"
        )
        out["options"] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return out


# ------------------------------------------------------------------------- the test host --
@dataclass
class Host:
    """A merchant host: plugin dir, state dir, config, database, control plane."""

    tmp: Path
    cp: FakeControlPlane
    plugin_dir: Path
    state_dir: Path
    releases_dir: Path
    db_url: str | None = None
    config_path: Path = field(default=None)  # type: ignore[assignment]
    smoke: dict[str, Any] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    public_key: str | None = field(default_factory=signing_public_key)

    def write_config(self, **sections: dict[str, Any]) -> Path:
        cfg: dict[str, dict[str, Any]] = {
            "control_plane": {
                "url": self.cp.api_url,
                "token": "plugin-token",
                "merchant_id": MERCHANT,
                "country": "SN",
                "tier": "pro",
                "timeout_s": 5,
            },
            "plugin": {
                "name": "woocommerce",
                "dir": str(self.plugin_dir),
                "version_from": "wp-header:molam-form.php",
            },
            "smoke_test": self.smoke or {"command": f"{sys.executable} {SMOKE}", "timeout_s": 20},
            "storage": {
                "state_dir": str(self.state_dir),
                "backup_key_file": str(self.tmp / "etc" / "backup.key"),
                "retention_days": 30,
            },
            "maintenance": {"ttl_s": 60},
        }
        if self.db_url:
            cfg["database"] = {
                "url": self.db_url,
                "tables": CONFIG_TABLES,
                # SQLite's LIKE has no default escape character: say which one.
                "options": {
                    "table": "wp_options",
                    "where": "option_name LIKE 'molam\\_%'"
                    + (" ESCAPE '\\'" if self.db_url.startswith("sqlite") else ""),
                },
            }
        if self.public_key:
            cfg["release"] = {"public_key": self.public_key}
        for name, values in sections.items():
            cfg.setdefault(name, {}).update(values)
        self.config_path = self.tmp / "agent.toml"
        self.config_path.write_text(to_toml(cfg))
        return self.config_path

    def publish(
        self,
        zip_path: Path,
        version: str,
        sha256: str | None = None,
        signature: Any = SIGN,
        should: bool = True,
    ) -> None:
        """Make the control plane offer ``zip_path`` as ``version``, signed unless ``signature``
        is given (``None``: unsigned)."""
        target = self.releases_dir / zip_path.name
        if not target.exists():
            try:
                os.link(zip_path, target)
            except OSError:
                shutil.copy(zip_path, target)
        if sha256 is None:
            sha256 = hashlib.sha256(target.read_bytes()).hexdigest()
        if signature is SIGN:
            signature = sign_release(target)
        release = {
            "version": version,
            "download_url": self.cp.file_url(zip_path.name),
            "sha256": sha256,
            "signature": signature,
        }
        self.cp.state.releases = [release]
        self.cp.state.decision = {
            "should_upgrade": should,
            "reason": "Merchant selected for 100% rollout (random strategy)"
            if should
            else "Outside the rollout percentage",
            "rollout_id": 1,
            "rollout_percentage": 100,
            "rollout_strategy": "random",
            "version": version,
            "bucket": 42,
            "release": release,
        }

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> tuple[int, dict[str, Any]]:
        """Run the real ``molam-agent`` in a subprocess; return (exit code, JSON result)."""
        if self.config_path is None:
            self.write_config()
        full_env = dict(os.environ, PYTHONPATH=str(REPO), **self.extra_env, **(env or {}))
        full_env.pop("MOLAM_AGENT_FAULT", None) if not (env and "MOLAM_AGENT_FAULT" in env) else None
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "molam_agent",
                args[0],
                "--config",
                str(self.config_path),
                "--json",
                *args[1:],
            ],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=str(self.tmp),
        )
        out: dict[str, Any] = {}
        if proc.stdout.strip():
            try:
                out = json.loads(proc.stdout.strip().splitlines()[-1])
            except json.JSONDecodeError:
                out = {"_stdout": proc.stdout}
        out["_stderr"] = proc.stderr
        return proc.returncode, out

    def fingerprint(self) -> str | None:
        return tree_fingerprint(self.plugin_dir) if self.plugin_dir.is_dir() else None

    def installed(self) -> str:
        from molam_agent.versions import read_installed_version

        return read_installed_version(self.plugin_dir, "wp-header:molam-form.php")


def to_toml(cfg: dict[str, dict[str, Any]]) -> str:
    """Just enough TOML for the tests' configs."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return json.dumps(str(v))

    lines = []
    for section, values in cfg.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {val(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[FakeControlPlane]:
    files = tmp_path / "www"
    files.mkdir()
    cp = FakeControlPlane(files)
    yield cp
    try:
        cp.stop()
    except Exception:  # noqa: BLE001 - a test may have stopped it already
        pass


def _host(tmp_path: Path, cp: FakeControlPlane, db_url: str | None) -> Host:
    plugins = tmp_path / "wp-content" / "plugins"
    plugins.mkdir(parents=True)
    return Host(
        tmp=tmp_path,
        cp=cp,
        plugin_dir=plugins / "molam-form",
        state_dir=tmp_path / "state",
        releases_dir=cp.state.files_dir,
        db_url=db_url,
    )


@pytest.fixture
def host(tmp_path: Path, control_plane: FakeControlPlane) -> Host:
    """A small plugin (40 files) at 3.9.0, no database."""
    h = _host(tmp_path, control_plane, None)
    build_plugin(h.plugin_dir, "3.9.0")
    return h


@pytest.fixture(params=["mysql", "postgresql", "sqlite"])
def db_host(
    request: pytest.FixtureRequest, tmp_path: Path, control_plane: FakeControlPlane
) -> Iterator[Host]:
    """A small plugin at 3.9.0 with its tables (2,000 orders) in each database engine."""
    url, cleanup = create_database(request.param, tmp_path, rows=2000)
    h = _host(tmp_path, control_plane, url)
    build_plugin(h.plugin_dir, "3.9.0")
    yield h
    cleanup()


@pytest.fixture
def mysql_host(tmp_path: Path, control_plane: FakeControlPlane) -> Iterator[Host]:
    """A small plugin at 3.9.0 with its tables (2,000 orders) in MariaDB."""
    url, cleanup = create_database("mysql", tmp_path, rows=2000)
    h = _host(tmp_path, control_plane, url)
    build_plugin(h.plugin_dir, "3.9.0")
    yield h
    cleanup()


@pytest.fixture
def woo_host(tmp_path: Path, control_plane: FakeControlPlane, woo_tree: Path) -> Iterator[Host]:
    """The WooCommerce-sized plugin with 100,000 orders in MariaDB."""
    url, cleanup = create_database("mysql", tmp_path, rows=WOO_ROWS)
    h = _host(tmp_path, control_plane, url)
    shutil.copytree(woo_tree, h.plugin_dir, symlinks=True)
    yield h
    cleanup()


@pytest.fixture
def small_release(tmp_path: Path) -> Any:
    """Build a release of the small plugin: ``small_release(version, **make_release kwargs)``."""
    base = tmp_path / "release-src" / "molam-form"
    build_plugin(base, "0", seed=2)

    def build(version: str = "4.0.0", name: str | None = None, **kwargs: Any) -> tuple[Path, str]:
        path = tmp_path / (name or f"molam-form-{version}-{uuid.uuid4().hex[:6]}.zip")
        return path, make_release(path, base, version, **kwargs)

    return build


@pytest.fixture(params=["mysql", "postgresql"])
def sql_host(
    request: pytest.FixtureRequest, tmp_path: Path, control_plane: FakeControlPlane
) -> Iterator[Host]:
    """A small plugin at 3.9.0 with its tables (2,000 orders) in MariaDB or PostgreSQL."""
    url, cleanup = create_database(request.param, tmp_path, rows=2000)
    h = _host(tmp_path, control_plane, url)
    h.engine = request.param  # type: ignore[attr-defined]
    build_plugin(h.plugin_dir, "3.9.0")
    yield h
    cleanup()


# -------------------------------------------------------------- writes in the window --
# The smoke command that writes as the shop does while checkout is paused, then answers.
WEBHOOK = Path(__file__).with_name("webhook_smoke.py")
NEW_ORDER = (
    "INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at)"
    " VALUES ('{ref}', 12.50, 'XOF', 'paid', '2024-03-01 10:00:00')"
)


def release_in_mode(
    host: Host, small_release: Any, mode: str, health: str = "ok", version: str = "4.0.0"
) -> Path:
    """Publish a release whose migrations take ``mode`` (expand, down, snapshot); write the config."""
    zip_path, _ = small_release(version, migrations=RELEASES[mode], health=health)
    host.publish(zip_path, version)
    host.write_config(database={"allow_snapshot": mode == "snapshot"})
    return zip_path


def shop_writes_in_window(host: Host, statements: list[str], version: str = "4.0.0") -> None:
    """The smoke test of ``version``: run ``statements`` as the shop, then report unhealthy.

    Takes effect with the next ``write_config`` (``release_in_mode`` writes it).
    """
    host.smoke = {"command": f"{sys.executable} {WEBHOOK}", "timeout_s": 30}
    host.extra_env.update(
        MOLAM_TEST_DB_URL=host.db_url or "",
        MOLAM_TEST_SQL=json.dumps(statements),
        MOLAM_TEST_ON_VERSION=version,
        MOLAM_TEST_EXIT="1",
    )


def ed25519_keypair() -> tuple[Any, str]:
    """(private key, base64 public key) for signed-release tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key, base64.b64encode(raw).decode()

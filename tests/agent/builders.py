"""Builders for agent fixtures: plugin trees, release packages and seeded plugin tables.

Plain functions and constants, shared by the agent tests and ``benchmarks/agent_rollback.py``
so both exercise the same WooCommerce-sized plugin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import uuid
import zipfile
from pathlib import Path

# WooCommerce-sized: ~5,000 files, ~60 MB.
WOO_FILES = 5000
WOO_BYTES = 60 << 20
WOO_ROWS = 100_000

# A release with a contract statement (the UPDATE) whose files ship their reverse migrations
# (``migrations/down/``): "down" mode. Keys under ``down/`` are the reverse files.
GOOD_MIGRATIONS = {
    "001_fee_column.sql": "ALTER TABLE wp_molam_orders ADD COLUMN fee_amount DECIMAL(12,2) NOT NULL DEFAULT 0;\n",
    "002_refunds.sql": (
        "CREATE TABLE wp_molam_refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount DECIMAL(12,2));\n"
        "UPDATE wp_molam_settings SET value = '4' WHERE name = 'schema';\n"
        "INSERT INTO wp_options (option_name, option_value) VALUES ('molam_v4_flag', '1');\n"
    ),
    "down/001_fee_column.sql": "ALTER TABLE wp_molam_orders DROP COLUMN fee_amount;\n",
    "down/002_refunds.sql": (
        "DROP TABLE wp_molam_refunds;\n"
        "UPDATE wp_molam_settings SET value = '3' WHERE name = 'schema';\n"
        "DELETE FROM wp_options WHERE option_name = 'molam_v4_flag';\n"
    ),
}
# Fails at run time (the column does not exist) on a table of the plugin: an expand statement.
BROKEN_MIGRATIONS = dict(
    GOOD_MIGRATIONS, **{"003_broken.sql": "CREATE INDEX idx_broken ON wp_molam_orders (no_such_column);\n"}
)
# The normal case: additive only, no reverse files, no table copied.
EXPAND_MIGRATIONS = {
    "001_fee_column.sql": "ALTER TABLE wp_molam_orders ADD COLUMN fee_amount DECIMAL(12,2) NOT NULL DEFAULT 0;\n",
    "002_refunds.sql": (
        "CREATE TABLE wp_molam_refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount DECIMAL(12,2));\n"
        "CREATE INDEX idx_refund_order ON wp_molam_refunds (order_id);\n"
        "INSERT INTO wp_options (option_name, option_value) VALUES ('molam_v4_flag', '1');\n"
    ),
}
# Contract without reverse files: refused unless database.allow_snapshot = true.
SNAPSHOT_MIGRATIONS = {
    "001_fee_column.sql": "ALTER TABLE wp_molam_orders ADD COLUMN fee_amount DECIMAL(12,2) NOT NULL DEFAULT 0;\n",
    "002_status.sql": (
        "ALTER TABLE wp_molam_orders DROP COLUMN payload;\n"
        "UPDATE wp_molam_settings SET value = '4' WHERE name = 'schema';\n"
    ),
}
# Tables the agent's test config declares as the plugin's (wp_molam_refunds: created by 4.0.0).
CONFIG_TABLES = ["wp_molam_orders", "wp_molam_settings", "wp_molam_refunds"]


def up_only(migrations: dict[str, str]) -> dict[str, str]:
    """The forward migration files of a ``migrations`` dict (without ``down/`` files)."""
    return {k: v for k, v in migrations.items() if not k.startswith("down/")}


# --------------------------------------------------------------------------- release signing --
# The agent refuses unsigned releases unless told otherwise, so every test release is signed
# with this fixed test key (deterministic, so the benchmark and the tests agree).
_SIGNING_SEED = hashlib.sha256(b"molam-agent test release signing key").digest()


def signing_key():  # -> Ed25519PrivateKey
    """The private key test releases are signed with."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(_SIGNING_SEED)


def signing_public_key() -> str:
    """The matching ``[release] public_key`` (base64 of the 32 raw bytes)."""
    from cryptography.hazmat.primitives import serialization

    raw = signing_key().public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_release(path: Path, key=None) -> str:
    """Base64 Ed25519 signature over the package's bytes, as the control plane serves it."""
    return base64.b64encode((key or signing_key()).sign(Path(path).read_bytes())).decode()


# --------------------------------------------------------------------------- plugin trees --
def write_header(root: Path, version: str) -> None:
    (root / "molam-form.php").write_text(
        "<?php\n/**\n * Plugin Name: Molam Form\n * Description: Molam payments for WooCommerce\n"
        f" * Version: {version}\n * Requires PHP: 7.4\n */\n\ndefined('ABSPATH') || exit;\n"
        f"define('MOLAM_FORM_VERSION', '{version}');\n"
    )


def build_plugin(
    root: Path, version: str, files: int = 40, total_bytes: int = 200_000, seed: int = 1
) -> Path:
    """A plugin directory: header, health file, PHP/JS/CSS/translations and a few binaries."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    write_header(root, version)
    (root / "health").write_text("ok\n")
    words = b"function molam_checkout payment order amount currency gateway refund webhook $this->process ( ) ; { } return array\n".split(
        b" "
    )
    kinds = [
        ("includes", ".php"),
        ("assets/js", ".js"),
        ("assets/css", ".css"),
        ("languages", ".po"),
        ("templates", ".php"),
        ("assets/img", ".png"),
    ]
    avg = max(16, total_bytes // files)
    for i in range(files - 2):
        sub, ext = kinds[i % len(kinds)]
        d = root / sub / f"g{i // 250:02d}"
        d.mkdir(parents=True, exist_ok=True)
        size = max(8, int(avg * rng.uniform(0.3, 1.7)))
        if ext == ".png":
            data = rng.randbytes(size)
        else:
            line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
            data = (f"/* file {i} seed {seed} */\n".encode() + line * (size // len(line) + 1))[:size]
        (d / f"file_{i:05d}{ext}").write_bytes(data)
    os.chmod(root / "includes", 0o755)
    return root


def make_release(
    dest_zip: Path,
    base: Path,
    version: str,
    *,
    migrations: dict[str, str] | None = None,
    health: str = "ok",
    top_folder: str | None = "molam-form",
    extra: dict[str, bytes] | None = None,
) -> str:
    """Zip ``base`` as version ``version`` (header rewritten) and return its SHA-256."""
    prefix = f"{top_folder}/" if top_folder else ""
    with zipfile.ZipFile(dest_zip, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).as_posix()
            if rel in ("molam-form.php", "health") or rel.startswith("migrations/"):
                continue
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(prefix + rel, date_time=(2024, 1, 15, 12, 0, 0))
            info.external_attr = (0o100644) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
        tmp = dest_zip.parent / f".hdr-{uuid.uuid4().hex}"
        tmp.mkdir()
        write_header(tmp, version)
        zf.writestr(prefix + "molam-form.php", (tmp / "molam-form.php").read_bytes())
        shutil.rmtree(tmp)
        zf.writestr(prefix + "health", f"{health}\n")
        zf.writestr(prefix + "includes/class-molam-v4.php", f"<?php // new in {version}\n")
        for name, sql in (migrations or {}).items():
            zf.writestr(prefix + f"migrations/{name}", sql)
        for name, data in (extra or {}).items():
            zf.writestr(prefix + name, data)
    return hashlib.sha256(dest_zip.read_bytes()).hexdigest()


# The release each migration mode is tested with.
RELEASES = {"expand": EXPAND_MIGRATIONS, "down": GOOD_MIGRATIONS, "snapshot": SNAPSHOT_MIGRATIONS}

MYSQL_SEED = """
CREATE TABLE wp_molam_orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  order_ref VARCHAR(32) NOT NULL, amount DECIMAL(12,2) NOT NULL, currency CHAR(3) NOT NULL,
  status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, payload TEXT,
  KEY idx_status (status)) ENGINE=InnoDB;
INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at, payload)
  SELECT CONCAT('MF-', seq), (seq % 100000) / 100, 'XOF', ELT(1 + seq % 3, 'paid', 'pending', 'refunded'),
         '2024-01-01' + INTERVAL seq SECOND, REPEAT('x', 40) FROM seq_1_to_{rows};
CREATE TABLE wp_molam_settings (name VARCHAR(64) PRIMARY KEY, value TEXT) ENGINE=InnoDB;
INSERT INTO wp_molam_settings VALUES ('schema', '3'), ('mode', 'live');
CREATE TABLE wp_options (
  option_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  option_name VARCHAR(191) NOT NULL UNIQUE, option_value LONGTEXT NOT NULL,
  autoload VARCHAR(20) NOT NULL DEFAULT 'yes') ENGINE=InnoDB;
INSERT INTO wp_options (option_name, option_value) VALUES
  ('siteurl', 'https://shop.example'), ('molam_api_key', 'pk_live_1'), ('molam_mode', 'live'),
  ('woocommerce_currency', 'XOF');
"""

PG_SEED = """
CREATE TABLE wp_molam_orders (
  id BIGSERIAL PRIMARY KEY, order_ref VARCHAR(32) NOT NULL, amount NUMERIC(12,2) NOT NULL,
  currency CHAR(3) NOT NULL, status VARCHAR(16) NOT NULL, created_at TIMESTAMP NOT NULL, payload TEXT);
CREATE INDEX idx_status ON wp_molam_orders (status);
INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at, payload)
  SELECT 'MF-' || s, (s % 100000) / 100.0, 'XOF', (ARRAY['paid','pending','refunded'])[1 + s % 3],
         TIMESTAMP '2024-01-01' + s * INTERVAL '1 second', repeat('x', 40) FROM generate_series(1, {rows}) s;
CREATE TABLE wp_molam_settings (name VARCHAR(64) PRIMARY KEY, value TEXT);
INSERT INTO wp_molam_settings VALUES ('schema', '3'), ('mode', 'live');
CREATE TABLE wp_options (
  option_id BIGSERIAL PRIMARY KEY, option_name VARCHAR(191) NOT NULL UNIQUE,
  option_value TEXT NOT NULL, autoload VARCHAR(20) NOT NULL DEFAULT 'yes');
INSERT INTO wp_options (option_name, option_value) VALUES
  ('siteurl', 'https://shop.example'), ('molam_api_key', 'pk_live_1'), ('molam_mode', 'live'),
  ('woocommerce_currency', 'XOF');
"""

SQLITE_SEED = """
CREATE TABLE wp_molam_orders (id INTEGER PRIMARY KEY AUTOINCREMENT, order_ref TEXT NOT NULL,
  amount NUMERIC NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, payload TEXT);
CREATE INDEX idx_status ON wp_molam_orders (status);
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {rows})
INSERT INTO wp_molam_orders (order_ref, amount, currency, status, created_at, payload)
  SELECT 'MF-' || n, (n % 100000) / 100.0, 'XOF', 'paid', '2024-01-01', 'xxxx' FROM s;
CREATE TABLE wp_molam_settings (name TEXT PRIMARY KEY, value TEXT);
INSERT INTO wp_molam_settings VALUES ('schema', '3'), ('mode', 'live');
CREATE TABLE wp_options (option_id INTEGER PRIMARY KEY AUTOINCREMENT, option_name TEXT NOT NULL UNIQUE,
  option_value TEXT NOT NULL, autoload TEXT NOT NULL DEFAULT 'yes');
INSERT INTO wp_options (option_name, option_value) VALUES
  ('siteurl', 'https://shop.example'), ('molam_api_key', 'pk_live_1'), ('molam_mode', 'live'),
  ('woocommerce_currency', 'XOF');
"""

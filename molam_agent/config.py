"""Agent configuration: a TOML file, every value overridable by environment variables.

``MOLAM_AGENT_<SECTION>_<KEY>`` overrides ``[section] key``; for example
``MOLAM_AGENT_CONTROL_PLANE_TOKEN`` or ``MOLAM_AGENT_STORAGE_RETENTION_DAYS``. List values
(``database.tables``) accept a JSON array or a comma-separated string; table values
(``database.options``) a JSON object.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .transport import url_refusal

try:
    import tomllib  # novermin (3.11+; tomli below on 3.9 and 3.10)
except ModuleNotFoundError:  # Python 3.9 and 3.10: the same parser, published as tomli
    import tomli as tomllib

DEFAULT_CONFIG_PATH = "/etc/molam-agent/agent.toml"
CONFIG_ENV = "MOLAM_AGENT_CONFIG"
_PLUGIN_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_$]{1,60}$")

# section -> key -> type. The types drive env-var parsing; unknown keys in the file are errors
# so that a typo ("retention_day") does not silently fall back to a default.
SCHEMA: dict[str, dict[str, str]] = {
    "control_plane": {
        "url": "str",
        "token": "str",
        "token_file": "str",
        "merchant_id": "str",
        "country": "str",
        "tier": "str",
        "timeout_s": "float",
    },
    "plugin": {"name": "str", "dir": "str", "version_from": "str"},
    "database": {
        "url": "str",
        "tables": "list",
        "options": "dict",
        "site_id": "str",
        "allow_snapshot": "bool",
        "lock_timeout_s": "float",
        "lock_retries": "int",
        "long_transaction_s": "float",
    },
    "smoke_test": {"command": "str", "url": "str", "timeout_s": "float"},
    "storage": {
        "state_dir": "str",
        "backup_key_file": "str",
        "backup_key": "str",
        "retention_days": "int",
    },
    "release": {
        "public_key": "str",
        "allow_unsigned": "bool",
        "forced_rollback_max_age_s": "int",
        "max_download_mb": "int",
        "max_unpacked_mb": "int",
    },
    "maintenance": {"ttl_s": "int", "message": "str", "max_pause_s": "int"},
    "payment_health": {"query": "str", "hours": "int"},
}


@dataclass(frozen=True)
class OptionRows:
    """Rows of a shared table (``wp_options``) that belong to the plugin."""

    table: str
    where: str


@dataclass(frozen=True)
class Config:
    """The validated configuration of one agent installation."""

    api_url: str
    token: str
    merchant_id: str
    plugin_name: str
    plugin_dir: Path
    version_from: str
    state_dir: Path
    backup_key_file: Path
    backup_key_b64: str | None = None
    country: str | None = None
    tier: str | None = None
    api_timeout_s: float = 10.0
    db_url: str | None = None
    db_tables: tuple[str, ...] = ()
    db_options: OptionRows | None = None
    db_site_id: str | None = None
    db_allow_snapshot: bool = False
    db_lock_timeout_s: float = 2.0
    db_lock_retries: int = 3
    db_long_transaction_s: float = 10.0
    smoke_command: str | None = None
    smoke_url: str | None = None
    smoke_timeout_s: float = 10.0
    retention_days: int = 30
    public_key: str | None = None
    allow_unsigned: bool = False
    forced_rollback_max_age_s: int = 24 * 3600
    max_download_bytes: int = 512 << 20
    max_unpacked_bytes: int = 1024 << 20
    maintenance_ttl_s: int = 120
    maintenance_max_pause_s: int = 600
    maintenance_message: str = (
        "Checkout is paused for a few seconds while the payment plugin is being updated. "
        "Please try again in a moment."
    )
    payment_health_query: str | None = None  # payment_health.py: hourly checkout figures
    payment_health_hours: int = 3
    source: str = field(default="", compare=False)


def _coerce(value: Any, kind: str, where: str) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{where} must be true or false")
    if kind == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer")
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be an integer") from exc
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be a number") from exc
    if kind == "list":
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{where} is not a JSON array") from exc
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return value
    if kind == "dict":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where} is not a JSON object") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return value
    raise AssertionError(kind)


def _merge(raw: dict[str, Any], environ: dict[str, str]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for section, values in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] must be a table")
        for key in values:
            if key not in SCHEMA[section]:
                raise ConfigError(f"unknown config key {section}.{key}")
        merged[section] = dict(values)
    for section, keys in SCHEMA.items():
        for key in keys:
            env_name = f"MOLAM_AGENT_{section.upper()}_{key.upper()}"
            if env_name in environ:
                merged.setdefault(section, {})[key] = environ[env_name]
    for section, values in merged.items():
        for key, value in list(values.items()):
            values[key] = _coerce(value, SCHEMA[section][key], f"{section}.{key}")
    return merged


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration; raise ``ConfigError`` (exit 64) on any problem."""
    env = dict(os.environ if environ is None else environ)
    explicit = path or env.get(CONFIG_ENV)
    cfg_path = Path(explicit or DEFAULT_CONFIG_PATH)
    raw: dict[str, Any] = {}
    try:
        with open(cfg_path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError as exc:
        # The default path may be absent when everything comes from the environment.
        from_env = any(name.startswith("MOLAM_AGENT_") and name != CONFIG_ENV for name in env)
        if explicit or not from_env:
            how = "" if explicit else f" (pass --config FILE or set {CONFIG_ENV})"
            raise ConfigError(f"no config file at {cfg_path}{how}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {cfg_path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {cfg_path}: {exc}") from exc
    merged = _merge(raw, env)
    return _build(merged, str(cfg_path))


def _check_public_key(text: str) -> None:
    """A malformed key is a configuration error (exit 64), not a failed upgrade later."""
    from .errors import VerificationError
    from .release import load_public_key

    try:
        load_public_key(text)
    except (VerificationError, ValueError) as exc:
        raise ConfigError(f"release.public_key: {exc}") from exc
    except ImportError:  # cryptography missing: the upgrade reports it when it verifies
        pass


def _site_id(value: Any) -> str | None:
    """``database.site_id``: namespaces snapshot tables and migration records per installation."""
    if value in (None, ""):
        return None
    if not re.match(r"^[a-z0-9]{1,12}$", str(value)):
        raise ConfigError("database.site_id must be 1-12 lowercase letters or digits")
    return str(value)


def _require(merged: dict[str, dict[str, Any]], section: str, key: str) -> Any:
    value = merged.get(section, {}).get(key)
    if value in (None, ""):
        raise ConfigError(f"{section}.{key} is required")
    return value


def _build(m: dict[str, dict[str, Any]], source: str) -> Config:
    cp = m.get("control_plane", {})
    url = str(_require(m, "control_plane", "url"))
    refusal = url_refusal(url)
    if refusal:
        # The token travels with every request: plain http only where nothing crosses a network.
        raise ConfigError(f"control_plane.url: {refusal}")
    if not url.endswith("/"):
        url += "/"
    token = cp.get("token")
    if not token and cp.get("token_file"):
        try:
            token = Path(cp["token_file"]).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read control_plane.token_file: {exc}") from exc
    if not token:
        raise ConfigError("control_plane.token or control_plane.token_file is required")
    merchant_id = str(_require(m, "control_plane", "merchant_id"))
    try:
        merchant_id = str(uuid.UUID(merchant_id))
    except ValueError as exc:
        raise ConfigError("control_plane.merchant_id must be a UUID") from exc

    name = str(_require(m, "plugin", "name"))
    if not _PLUGIN_NAME_RE.match(name):
        raise ConfigError("plugin.name must match ^[a-z0-9][a-z0-9_-]{0,63}$")
    plugin_dir = Path(_require(m, "plugin", "dir"))
    if not plugin_dir.is_absolute():
        raise ConfigError("plugin.dir must be an absolute path")
    # A symlinked plugin dir (deploy tools do that) is upgraded where it really lives, so the
    # swap exchanges directories, not the link.
    plugin_dir = Path(os.path.realpath(plugin_dir))
    version_from = str(m.get("plugin", {}).get("version_from") or "file:VERSION")
    kind, _, rel = version_from.partition(":")
    if kind not in ("wp-header", "file") or not rel or ".." in Path(rel).parts:
        raise ConfigError("plugin.version_from must be 'wp-header:FILE' or 'file:FILE'")

    db = m.get("database", {})
    db_url = db.get("url")
    tables: tuple[str, ...] = tuple(db.get("tables", []))
    for table in tables:
        if not _TABLE_RE.match(table.removesuffix("*") if len(table) > 1 else table):
            raise ConfigError(f"database.tables: {table!r} is not a plain table name (or prefix*)")
    if db and not db_url:
        raise ConfigError("database.url is required when [database] is present")
    if db_url and not re.match(r"^(mysql|mariadb|postgres|postgresql|sqlite)://", db_url):
        raise ConfigError("database.url must start with mysql://, mariadb://, postgresql:// or sqlite://")
    options = None
    if db.get("options"):
        opt = db["options"]
        if set(opt) != {"table", "where"} or not all(isinstance(v, str) for v in opt.values()):
            raise ConfigError('database.options must be { table = "…", where = "…" }')
        if not _TABLE_RE.match(opt["table"]):
            raise ConfigError("database.options.table is not a plain table name")
        if opt["table"] in tables:
            # The options table is shared with WordPress and every other plugin: it is never
            # swapped whole, only the plugin's rows are restored.
            raise ConfigError("database.options.table must not also be listed in database.tables")
        options = OptionRows(opt["table"], opt["where"])

    smoke = m.get("smoke_test", {})
    if smoke.get("url") and not re.match(r"^https?://", smoke["url"]):
        raise ConfigError("smoke_test.url must be an http(s) URL")

    storage = m.get("storage", {})
    state_dir = Path(storage.get("state_dir") or "/var/lib/molam-agent")
    key_file = Path(storage.get("backup_key_file") or "/etc/molam-agent/backup.key")
    key_b64 = storage.get("backup_key")
    if key_b64:
        try:
            if len(base64.b64decode(key_b64, validate=True)) != 32:
                raise ValueError
        except ValueError as exc:
            raise ConfigError("storage.backup_key must be 32 bytes, base64") from exc
    retention = storage.get("retention_days", 30)
    if retention < 1:
        raise ConfigError("storage.retention_days must be at least 1")

    release = m.get("release", {})
    public_key = release.get("public_key") or None
    allow_unsigned = bool(release.get("allow_unsigned", False))
    if public_key is None and not allow_unsigned:
        raise ConfigError(
            "release.public_key is required: releases are installed only when their Ed25519 "
            "signature verifies (set release.allow_unsigned = true to opt out, not recommended)"
        )
    if public_key is not None:
        _check_public_key(public_key)
    max_age = int(release.get("forced_rollback_max_age_s", 24 * 3600))
    if max_age < 60:
        raise ConfigError("release.forced_rollback_max_age_s must be at least 60")
    maint = m.get("maintenance", {})
    kwargs: dict[str, Any] = {}
    if maint.get("message"):
        kwargs["maintenance_message"] = maint["message"]
    return Config(
        api_url=url,
        token=str(token),
        merchant_id=merchant_id,
        country=cp.get("country") or None,
        tier=cp.get("tier") or None,
        api_timeout_s=float(cp.get("timeout_s", 10.0)),
        plugin_name=name,
        plugin_dir=plugin_dir,
        version_from=version_from,
        db_url=db_url or None,
        db_tables=tables,
        db_options=options,
        db_site_id=_site_id(db.get("site_id")),
        db_allow_snapshot=bool(db.get("allow_snapshot", False)),
        db_lock_timeout_s=max(0.1, float(db.get("lock_timeout_s", 2.0))),
        db_lock_retries=max(1, int(db.get("lock_retries", 3))),
        db_long_transaction_s=max(0.0, float(db.get("long_transaction_s", 10.0))),
        smoke_command=smoke.get("command") or None,
        smoke_url=smoke.get("url") or None,
        smoke_timeout_s=float(smoke.get("timeout_s", 10.0)),
        state_dir=state_dir,
        backup_key_file=key_file,
        backup_key_b64=key_b64 or None,
        retention_days=retention,
        public_key=public_key,
        allow_unsigned=allow_unsigned,
        forced_rollback_max_age_s=max_age,
        max_download_bytes=int(release.get("max_download_mb", 512)) << 20,
        max_unpacked_bytes=int(release.get("max_unpacked_mb", 1024)) << 20,
        maintenance_ttl_s=max(3, int(maint.get("ttl_s", 120))),
        maintenance_max_pause_s=max(10, int(maint.get("max_pause_s", 600))),
        payment_health_query=m.get("payment_health", {}).get("query") or None,
        payment_health_hours=min(168, max(1, int(m.get("payment_health", {}).get("hours", 3)))),
        source=source,
        **kwargs,
    )

"""State shared by the agent's flows: configuration, lock, database, reports, state files."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from .api import ControlPlane
from .config import Config
from .db import Database, connect
from .errors import (
    ConfigError,
    LockedError,
)
from .fsutil import (
    atomic_write_json,
    inode_of,
    read_json,
    remove_tree,
)
from .journal import Journal
from .maintenance import Maintenance, work_dir
from .outbox import Outbox
from .versions import read_installed_version

log = logging.getLogger("molam_agent")

HOLD_S = 24 * 3600
SNAP_PREFIX = "molam_snap_"


def result(
    status: str,
    from_version: str | None = None,
    to_version: str | None = None,
    *,
    rollback_status: str = "not_required",
    reason: str | None = None,
    error: str | None = None,
    files_restored: int = 0,
    db_restored: bool = False,
    duration_ms: int = 0,
    rollback_duration_ms: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The result object printed by ``--json`` (keys fixed by the product contract)."""
    out = {
        "status": status,
        "from_version": from_version,
        "to_version": to_version,
        "rollback_status": rollback_status,
        "reason": reason,
        "error": error,
        "files_restored": files_restored,
        "db_restored": db_restored,
        "duration_ms": duration_ms,
        "rollback_duration_ms": rollback_duration_ms,
    }
    out.update(extra)
    return out


def _ms(start: float) -> int:
    return int(round((time.monotonic() - start) * 1000))


def _now() -> float:
    return time.time()


class AgentBase:
    """One plugin installation on this host: plumbing shared by every flow."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = Path(cfg.state_dir)
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.work = work_dir(cfg.plugin_dir)
        self.client = ControlPlane(cfg.api_url, cfg.token, cfg.api_timeout_s)
        self.outbox = Outbox(self.state)
        self.journal = Journal(self.state)
        self.maint = Maintenance(
            cfg.plugin_dir,
            cfg.maintenance_ttl_s,
            cfg.maintenance_message,
            cfg.plugin_name,
            getattr(cfg, "maintenance_max_pause_s", 600),
        )
        self._db: Database | None = None
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ plumbing --
    @contextlib.contextmanager
    def locked(self):
        """Hold the state-directory lock: one agent run at a time per installation."""
        fd = os.open(self.state / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError("another molam-agent run is in progress for this plugin") from None
        self._lock_fd = fd
        try:
            yield
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._lock_fd = None
            os.close(fd)  # closing releases the flock

    def db(self) -> Database | None:
        """The plugin's database, connected on first use; None without a [database] section."""
        if self.cfg.db_url and self._db is None:
            self._db = connect(self.cfg.db_url, lock_timeout_s=self.cfg.db_lock_timeout_s)
        return self._db

    @property
    def site(self) -> str:
        """This installation's id: namespaces snapshot tables and migration records.

        ``database.site_id`` when configured; otherwise derived once from the plugin directory
        (two shops sharing a database have different plugin directories) and kept in
        ``<state_dir>/site.json`` so that moving the directory later does not change it.
        """
        if self.cfg.db_site_id:
            return self.cfg.db_site_id
        stored = self._load("site.json", {}).get("site_id")
        if stored:
            return str(stored)
        site = hashlib.sha256(str(self.cfg.plugin_dir).encode()).hexdigest()[:8]
        self._store("site.json", {"site_id": site})
        return site

    def snap_prefix(self) -> str:
        """Prefix of this installation's snapshot tables."""
        return f"{SNAP_PREFIX}{self.site}_"

    def kept_name(self, table: str, tx: str) -> str:
        """Name of the kept copy of ``table`` set aside by operation ``tx`` on this site."""
        return f"{table[:28]}_kept_{self.site}_{tx[:8]}"

    def installed_version(self) -> str:
        """Version of the plugin installed in ``plugin.dir`` right now."""
        if not self.cfg.plugin_dir.is_dir():
            raise ConfigError(f"plugin directory {self.cfg.plugin_dir} does not exist")
        return read_installed_version(self.cfg.plugin_dir, self.cfg.version_from)

    def _prepare_work_dir(self) -> None:
        """Create the agent's directory beside the plugin, on the same file system."""
        root = self.work.parent
        self.work.mkdir(parents=True, exist_ok=True, mode=0o750)
        # The work dir sits inside the web root: deny HTTP access to old plugin copies.
        for name, body in (
            (".htaccess", "Require all denied\nDeny from all\n"),
            ("index.php", "<?php\n// Silence.\n"),
        ):
            path = root / name
            if not path.exists():
                path.write_text(body)
        if os.stat(self.work).st_dev != os.stat(self.cfg.plugin_dir.parent).st_dev:
            raise ConfigError(f"{self.work} is not on the plugin's file system")

    def _flush(self) -> dict[str, int]:
        """Send queued reports; never raises."""
        return self.outbox.flush(self.client)

    def _report(
        self, path: str, body: dict[str, Any], key: str, method: str = "POST", depends_on: str | None = None
    ) -> str:
        """Queue one report, once: the same key queued twice (after a crash) is a no-op."""
        if self.outbox.result(key) is not None or any(self.outbox.dir.glob(f"*-{key}.json")):
            return key
        base = {"merchant_id": self.cfg.merchant_id, "plugin_name": self.cfg.plugin_name}
        payload = body if method == "PATCH" or "/complete" in path else base | body
        return self.outbox.enqueue(method, path, payload, key=key, depends_on=depends_on)

    # ---------------------------------------------------------- small state files --
    def _load(self, name: str, default: Any) -> Any:
        """Read a small JSON state file of the state directory."""
        data = read_json(self.state / name)
        return default if data is None else data

    def _store(self, name: str, data: Any) -> None:
        """Write a small JSON state file atomically."""
        atomic_write_json(self.state / name, data)

    def _held(self, version: str, sha256: str | None) -> str | None:
        """The reason ``version`` is on hold after a rollback, or None."""
        holds = self._load("holds.json", {})
        hold = holds.get(version)
        if not hold or hold.get("until", 0) < _now():
            return None
        if hold.get("sha256") and sha256 and hold["sha256"] != sha256:
            return None  # a re-published package of the same version deserves a try
        return hold.get("reason")

    def _hold(self, version: str, sha256: str | None, reason: str) -> None:
        """Do not retry ``version`` automatically for ``HOLD_S`` seconds."""
        holds = {k: v for k, v in self._load("holds.json", {}).items() if v.get("until", 0) > _now()}
        holds[version] = {"until": _now() + HOLD_S, "sha256": sha256, "reason": reason}
        self._store("holds.json", holds)

    def _cleanup_paths(
        self,
        j: dict[str, Any],
        keep_inode: int | None,
        keys: tuple[str, ...] = ("download", "staging", "trash", "scratch"),
    ) -> None:
        """Delete the operation's scratch paths, never the tree that must stay (``keep_inode``)."""
        for key in keys:
            path = (j.get("paths") or {}).get(key)
            if not path:
                continue
            ino = inode_of(Path(path))
            if ino is not None and ino != keep_inode and ino != inode_of(self.cfg.plugin_dir):
                remove_tree(Path(path))

    def _delete_generation(self, gen: dict[str, Any]) -> None:
        """Delete a kept previous version: its directory and snapshot tables."""
        path = Path(gen.get("dir", ""))
        if gen.get("dir") and inode_of(path) == gen.get("inode"):
            remove_tree(path)
        gdb = gen.get("db") or {}
        db = self.db()
        if db is not None and gdb:
            names = [pair[1] for pair in gdb.get("pairs", [])]
            if gdb.get("options"):
                names.append(gdb["options"]["backup"])
            # Only this installation's copies: another site may share the database.
            db.drop_tables(n for n in names if n.startswith(self.snap_prefix()))

"""The safe-upgrade flow: backup, verify, apply, smoke-test, commit or roll back.

Everything that touches the live plugin is driven by the journal (``journal.py``): each
step is recorded before it happens, every undo operation detects what is already done
(directory inodes, which tables exist), so recovery after a crash -- or a second crash
during recovery -- converges on the old version, or on the new one once committed.

On-disk layout (see ``docs/agent.md``)::

    <state_dir>/journal.json        operation in flight
    <state_dir>/generations.json    previous version kept for instant rollback
    <state_dir>/current.json        what the last committed upgrade created
    <state_dir>/holds.json          versions not retried automatically for a while
    <state_dir>/kept.json           kept tables (rows written after a backup)
    <state_dir>/outbox/             reports waiting for the control plane
    <state_dir>/backups/*.mab       encrypted retention archives
    <plugins dir>/.molam-agent/<plugin dir name>/   staging, previous version, maintenance flag
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from . import backup as backups
from . import faults
from .api import ControlPlane
from .config import Config
from .crypto import load_or_create_key
from .db import MIGRATIONS_TABLE, Database, connect
from .errors import (
    AgentError,
    ConfigError,
    ControlPlaneError,
    LockedError,
    RollbackError,
    SmokeTestError,
    VerificationError,
)
from .fsutil import (
    atomic_write_json,
    count_files,
    exchange,
    fsync_dir,
    inode_of,
    read_json,
    remove_tree,
    swap_dirs,
    sync_filesystem,
)
from .journal import LIVE_UNTOUCHED, ROLLBACK_STEPS, Journal
from .maintenance import Maintenance, work_dir
from .outbox import Outbox
from .release import Release, download, extract_zip, verify_checksum, verify_signature
from .smoke import run_smoke_test
from .versions import Version, read_installed_version

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


class Agent:
    """One plugin installation on this host, as described by its configuration."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = Path(cfg.state_dir)
        self.state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.work = work_dir(cfg.plugin_dir)
        self.client = ControlPlane(cfg.api_url, cfg.token, cfg.api_timeout_s)
        self.outbox = Outbox(self.state)
        self.journal = Journal(self.state)
        self.maint = Maintenance(
            cfg.plugin_dir, cfg.maintenance_ttl_s, cfg.maintenance_message, cfg.plugin_name
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
            self._db = connect(self.cfg.db_url)
        return self._db

    def installed_version(self) -> str:
        if not self.cfg.plugin_dir.is_dir():
            raise ConfigError(f"plugin directory {self.cfg.plugin_dir} does not exist")
        return read_installed_version(self.cfg.plugin_dir, self.cfg.version_from)

    def _prepare_work_dir(self) -> None:
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
        data = read_json(self.state / name)
        return default if data is None else data

    def _store(self, name: str, data: Any) -> None:
        atomic_write_json(self.state / name, data)

    def _held(self, version: str, sha256: str | None) -> str | None:
        holds = self._load("holds.json", {})
        hold = holds.get(version)
        if not hold or hold.get("until", 0) < _now():
            return None
        if hold.get("sha256") and sha256 and hold["sha256"] != sha256:
            return None  # a re-published package of the same version deserves a try
        return hold.get("reason")

    def _hold(self, version: str, sha256: str | None, reason: str) -> None:
        holds = {k: v for k, v in self._load("holds.json", {}).items() if v.get("until", 0) > _now()}
        holds[version] = {"until": _now() + HOLD_S, "sha256": sha256, "reason": reason}
        self._store("holds.json", holds)

    # ----------------------------------------------------------------- recovery --
    def recover(self) -> dict[str, Any] | None:
        """Finish or undo an operation a crash interrupted. None when there was none."""
        j = self.journal.load()
        if not j:
            return None
        step = j.get("step")
        log.warning(
            "recovering interrupted %s (%s -> %s) at step %s",
            j.get("op"),
            j.get("from_version"),
            j.get("to_version"),
            step,
        )
        if step == "committed":
            return self._finish_commit(j, time.monotonic())
        if step in LIVE_UNTOUCHED:
            return self._abandon(j, f"interrupted at step '{step}' before any change to the live plugin")
        if step in ROLLBACK_STEPS or step == "rollback_failed":
            if step == "rolled_back":
                return self._finish_rollback(j)
            j.setdefault("error", "interrupted during rollback")
            return self._run_rollback(j, time.monotonic())
        # An upgrade that touched the live plugin and did not commit: undo it.
        j["trigger"] = "automatic"
        j["interrupted"] = True
        j["error"] = f"agent interrupted at step '{step}'"
        return self._run_rollback(j, time.monotonic())

    def _abandon(self, j: dict[str, Any], error: str) -> dict[str, Any]:
        self._cleanup_paths(j, keep_inode=None)
        if j.get("db", {}).get("pairs") and not j["db"].get("complete"):
            self._drop_partial_snapshot(j)
        self.maint.leave()
        if j.get("op") == "upgrade":
            self._report(
                "upgrades",
                {
                    "from_version": j["from_version"],
                    "to_version": j["to_version"],
                    "status": "failed",
                    "error": error,
                },
                key=f"{j['txid']}-upgrade",
            )
        self.journal.clear()
        return result("failed", j.get("from_version"), j.get("to_version"), error=error)

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

    # ------------------------------------------------------------------ upgrade --
    def upgrade(self, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """The whole flow of ``molam-agent upgrade``."""
        start = time.monotonic()
        recovered = self.recover()
        if recovered and recovered.get("rollback_status") == "failed":
            return recovered
        extra: dict[str, Any] = {"recovered": recovered} if recovered else {}
        self._flush()
        from_v = self.installed_version()

        if not dry_run:
            forced = self._forced_rollbacks(from_v)
            if forced:
                last = dict(forced[-1])
                last["forced_rollbacks"] = forced
                last["reason"] = "operator-forced rollback performed; no upgrade in this run"
                self._flush()
                return last | extra

        try:
            decision = self.client.should_upgrade(
                self.cfg.plugin_name, self.cfg.merchant_id, from_v, self.cfg.country, self.cfg.tier
            )
        except ControlPlaneError as exc:
            return result(
                "skipped",
                from_v,
                None,
                reason=f"control plane unreachable, nothing changed: {exc}",
                duration_ms=_ms(start),
                **extra,
            )
        release = self._pick_release(decision, from_v, force)
        to_v = release.version if release else decision.get("version")
        if not decision.get("should_upgrade") and not force:
            return result(
                "skipped",
                from_v,
                to_v,
                reason=decision.get("reason") or "no upgrade offered",
                duration_ms=_ms(start),
                **extra,
            )
        if release is None:
            return result(
                "skipped",
                from_v,
                to_v,
                reason="no release available for this plugin",
                duration_ms=_ms(start),
                **extra,
            )
        if Version(release.version) < Version(from_v):
            err = f"refusing to downgrade {from_v} -> {release.version}; use 'molam-agent rollback --to {release.version}'"
            return result("failed", from_v, release.version, error=err, duration_ms=_ms(start), **extra)
        if Version(release.version) == Version(from_v) and not force:
            return result(
                "skipped",
                from_v,
                release.version,
                reason=f"already on version {from_v}",
                duration_ms=_ms(start),
                **extra,
            )
        held = self._held(release.version, release.sha256)
        if held and not force:
            return result(
                "skipped",
                from_v,
                release.version,
                reason=f"version {release.version} on hold after a rollback ({held}); use --force",
                duration_ms=_ms(start),
                **extra,
            )
        if dry_run:
            return self._dry_run(release, from_v, start) | extra
        out = self._upgrade(release, from_v, start)
        self._flush()
        return out | extra

    def _pick_release(self, decision: dict[str, Any], from_v: str, force: bool) -> Release | None:
        rel = decision.get("release")
        version = decision.get("version")
        if not rel and force:
            try:
                releases = self.client.releases(self.cfg.plugin_name)
            except ControlPlaneError:
                releases = []
            candidates = [r for r in releases if r.get("version") and r.get("download_url")]
            if version:
                candidates = [r for r in candidates if r["version"] == version] or candidates
            if candidates:
                rel = max(candidates, key=lambda r: Version(r["version"]))
                version = rel["version"]
        if not rel:
            return None
        version = version or rel.get("version")
        if not version or not rel.get("download_url"):
            return None
        return Release(str(version), rel["download_url"], rel.get("sha256") or "", rel.get("signature"))

    def _dry_run(self, release: Release, from_v: str, start: float) -> dict[str, Any]:
        """Download, verify and unpack into a scratch dir; report what would happen."""
        self._prepare_work_dir()
        scratch = self.work / f"dryrun-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        try:
            pkg = scratch / "release.zip"
            verify_checksum(download(release, pkg, self.cfg.max_download_bytes), release.sha256)
            if self.cfg.public_key:
                verify_signature(pkg, release.signature, self.cfg.public_key)
            files = extract_zip(pkg, scratch / "tree", self.cfg.max_unpacked_bytes)
            staged_v = read_installed_version(scratch / "tree", self.cfg.version_from)
            migrations = sorted(p.name for p in (scratch / "tree" / "migrations").glob("*.sql"))
            db = self.db()
            done = db.applied_migrations(self.cfg.plugin_name) if db else {}
            pending = []
            try:
                pending = self.client.pending_rollbacks(self.cfg.plugin_name, self.cfg.merchant_id)
            except ControlPlaneError:
                pass
        except AgentError as exc:
            return result(
                "failed", from_v, release.version, error=str(exc), duration_ms=_ms(start), dry_run=True
            )
        finally:
            remove_tree(scratch)
        plan = {
            "files_in_release": files,
            "release_version_header": staged_v,
            "migrations_to_run": [m for m in migrations if m not in done],
            "tables_backed_up": list(self.cfg.db_tables),
            "pending_forced_rollbacks": [p.get("rollback_id") for p in pending],
        }
        return result(
            "skipped",
            from_v,
            release.version,
            reason=f"dry run: would upgrade {from_v} -> {release.version}",
            duration_ms=_ms(start),
            dry_run=True,
            plan=plan,
        )

    def _upgrade(self, release: Release, from_v: str, start: float) -> dict[str, Any]:
        cfg = self.cfg
        tx = uuid.uuid4().hex[:12]
        self._prepare_work_dir()
        j: dict[str, Any] = {
            "txid": tx,
            "attempt": 0,
            "op": "upgrade",
            "trigger": "automatic",
            "plugin": cfg.plugin_name,
            "from_version": from_v,
            "to_version": release.version,
            "release_sha256": release.sha256,
            "started_at": _now(),
            "paths": {
                "staging": str(self.work / f"staging-{tx}"),
                "download": str(self.work / f"download-{tx}.zip"),
                "aside": str(self.work / f"prev-{from_v}-{tx}"),
                "trash": str(self.work / f"failed-{release.version}-{tx}"),
            },
        }
        self.journal.begin(j, "prepared")
        log.info("upgrading %s %s -> %s", cfg.plugin_name, from_v, release.version)
        try:
            self._backup(tx, from_v)
            self.journal.step("backed_up")
            pkg = Path(j["paths"]["download"])
            verify_checksum(download(release, pkg, cfg.max_download_bytes), release.sha256)
            if cfg.public_key:
                verify_signature(pkg, release.signature, cfg.public_key)
            self.journal.step("downloaded")
            migrations = self._stage(pkg, Path(j["paths"]["staging"]), release.version)
            self.journal.step("staged", migrations=migrations, files_count=count_files(cfg.plugin_dir))
        except (AgentError, OSError) as exc:
            # Nothing live was touched: clean up and report a plain failure.
            log.error("upgrade stopped before any change: %s", exc)
            out = self._abandon(self.journal.data, str(exc))
            out["duration_ms"] = _ms(start)
            self._flush()
            return out

        failure_at: float | None = None
        try:
            self.maint.enter(from_v, release.version)
            self.journal.step("maintenance_on")
            self._snapshot(tx)
            self._swap()
            self._migrate(release.version)
            self._verify(release.version)
            self.journal.step("verified")
        except (AgentError, OSError, Exception) as exc:  # noqa: BLE001 - any failure rolls back
            failure_at = time.monotonic()
            log.error("upgrade failed, rolling back: %s", exc)
            j = self.journal.data
            j["error"] = str(exc) or exc.__class__.__name__
            out = self._run_rollback(j, failure_at)
            out["duration_ms"] = _ms(start)
            return out
        return self._finish_commit(self.journal.data, start)

    def _backup(self, tx: str, from_v: str) -> None:
        """Encrypted retention archive of the plugin directory and its rows, reported."""
        cfg = self.cfg
        key = load_or_create_key(cfg.backup_key_file, cfg.backup_key_b64, create=True)
        archive = self.state / "backups" / backups.archive_name(cfg.plugin_name, from_v, tx)
        self.journal.save(archive=str(archive))
        bkey = self._report(
            "backup",
            {
                "version": from_v,
                "backup_path": str(archive),
                "db_snapshot_name": f"{SNAP_PREFIX}{tx[:8]}" if cfg.db_url else None,
                "backup_status": "pending",
            },
            key=f"{tx}-backup",
        )
        try:
            size, sha = backups.create_archive(
                archive,
                key,
                cfg.plugin_name,
                from_v,
                cfg.plugin_dir,
                self.db(),
                list(cfg.db_tables),
                cfg.db_options,
            )
        except BaseException:
            Path(archive).with_name(f".{archive.name}.part").unlink(missing_ok=True)
            self._report(
                "backup/{backup_id}",
                {"backup_status": "failed"},
                key=f"{tx}-backup-done",
                method="PATCH",
                depends_on=bkey,
            )
            raise
        self._report(
            "backup/{backup_id}",
            {"backup_status": "completed", "backup_size_bytes": size, "sha256": sha},
            key=f"{tx}-backup-done",
            method="PATCH",
            depends_on=bkey,
        )

    def _stage(self, pkg: Path, staging: Path, version: str) -> list[list[str]]:
        """Unpack into the staging dir and check it is the promised version."""
        extract_zip(pkg, staging, self.cfg.max_unpacked_bytes)
        staged_v = read_installed_version(staging, self.cfg.version_from)
        if Version(staged_v) != Version(version):
            raise VerificationError(f"release package contains version {staged_v}, expected {version}")
        migrations = []
        for path in sorted((staging / "migrations").glob("*.sql")):
            migrations.append([path.name, hashlib.sha256(path.read_bytes()).hexdigest()])
        if migrations and not self.cfg.db_url:
            raise ConfigError("release ships SQL migrations but no [database] is configured")
        # Everything staged must be on disk before the swap can point at it.
        sync_filesystem(staging)
        return migrations

    def _snapshot(self, tx: str) -> None:
        """Copy the plugin's tables aside; the rollback will rename them back."""
        db = self.db()
        if db is None:
            return
        db.ensure_migrations_table()
        present = db.tables()
        names = list(dict.fromkeys([*self.cfg.db_tables, MIGRATIONS_TABLE]))
        pairs = [
            [t, f"{SNAP_PREFIX}{tx[:8]}_{i}", f"{t[:40]}_kept_{tx[:8]}"]
            for i, t in enumerate(names)
            if t in present
        ]
        options = None
        opt = self.cfg.db_options
        if opt is not None and opt.table in present:
            options = {
                "table": opt.table,
                "where": opt.where,
                "backup": f"{SNAP_PREFIX}{tx[:8]}_opt",
                "kept": f"{opt.table[:40]}_kept_{tx[:8]}",
            }
        self.journal.step(
            "snapshot_started",
            db={
                "engine": db.engine,
                "pairs": pairs,
                "options": options,
                "preexisting": sorted(present),
                "complete": False,
            },
        )
        for live, snap, _kept in pairs:
            db.copy_table(live, snap)
        if options:
            db.copy_rows(options["table"], options["backup"], options["where"])
        self.journal.data["db"]["complete"] = True
        self.journal.step("snapshot_done")

    def _swap(self) -> None:
        j = self.journal.data
        live = self.cfg.plugin_dir
        staging = Path(j["paths"]["staging"])
        files = {
            "live": str(live),
            "target_inode": inode_of(live),
            "other_inode": inode_of(staging),
            "candidates": [str(staging), j["paths"]["aside"]],
            "trash": j["paths"]["trash"],
        }
        self.journal.step("swap_started", files=files)
        swap_dirs(live, staging, Path(j["paths"]["aside"]))
        self.journal.step("swapped")

    def _migrate(self, version: str) -> None:
        j = self.journal.data
        db = self.db()
        if db is None or not j.get("migrations"):
            self.journal.step("migrations_done", created_tables=[])
            return
        self.journal.step("migrations_started")
        before = db.tables()
        files = []
        for name, sha in j["migrations"]:
            path = self.cfg.plugin_dir / "migrations" / name
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise VerificationError(f"migration {name} changed after staging")
            files.append((name, sha, data.decode("utf-8")))
        try:
            applied = db.apply_migrations(self.cfg.plugin_name, version, files)
        finally:
            faults.point("migrations:applied")
        created = sorted(db.tables() - before)
        self.journal.step("migrations_done", applied_migrations=applied, created_tables=created)

    def _verify(self, version: str) -> None:
        installed = read_installed_version(self.cfg.plugin_dir, self.cfg.version_from)
        if Version(installed) != Version(version):
            raise VerificationError(f"installed version is {installed} after the swap, expected {version}")
        run_smoke_test(
            self.cfg.smoke_command, self.cfg.smoke_url, self.cfg.plugin_dir, version, self.cfg.smoke_timeout_s
        )

    # ------------------------------------------------------------------- commit --
    def _finish_commit(self, j: dict[str, Any], start: float) -> dict[str, Any]:
        """Make the new version permanent (idempotent: recovery may run it again)."""
        if j.get("step") != "committed":
            self.journal.step("committed")
            j = self.journal.data
        tx = j["txid"]
        files = j.get("files") or {}
        gens = self._load("generations.json", [])
        if not any(g.get("txid") == tx for g in gens) and files:
            db = j.get("db") or {}
            gen = {
                "txid": tx,
                "version": j["from_version"],
                "dir": j["paths"]["aside"],
                "inode": files.get("target_inode"),
                "created_at": _now(),
                "db": {
                    "pairs": [[live, snap] for live, snap, _ in db.get("pairs", [])],
                    "options": {k: v for k, v in (db.get("options") or {}).items() if k != "kept"} or None,
                }
                if db.get("complete")
                else None,
            }
            # Only the immediately previous version is kept ready for an instant rollback;
            # older versions stay restorable from their encrypted archives.
            retired = gens
            self._store("generations.json", [gen])
            for old in retired:
                self._delete_generation(old)
        created_by = self._load("current.json", {}).get("created_by_version", {})
        if j.get("created_tables"):
            created_by[j["to_version"]] = j["created_tables"]
        self._store(
            "current.json",
            {
                "version": j["to_version"],
                "txid": tx,
                "created_tables": j.get("created_tables", []),
                "created_by_version": created_by,
                "committed_at": _now(),
            },
        )
        self.maint.leave()
        self._cleanup_paths(j, keep_inode=files.get("target_inode"))
        self._report(
            "upgrades",
            {
                "from_version": j["from_version"],
                "to_version": j["to_version"],
                "status": "success",
                "duration_ms": _ms(start) if j.get("step") else None,
            },
            key=f"{tx}-upgrade",
        )
        self.journal.clear()
        log.info("upgrade to %s committed", j["to_version"])
        self._flush()
        return result(
            "success",
            j["from_version"],
            j["to_version"],
            reason="upgrade verified and committed",
            duration_ms=_ms(start),
        )

    def _delete_generation(self, gen: dict[str, Any]) -> None:
        path = Path(gen.get("dir", ""))
        if gen.get("dir") and inode_of(path) == gen.get("inode"):
            remove_tree(path)
        gdb = gen.get("db") or {}
        db = self.db()
        if db is not None and gdb:
            names = [snap for _live, snap in gdb.get("pairs", [])]
            if gdb.get("options"):
                names.append(gdb["options"]["backup"])
            db.drop_tables(names)

    # ----------------------------------------------------------------- rollback --
    def _run_rollback(self, j: dict[str, Any], failure_at: float) -> dict[str, Any]:
        """Put the target version back: files, then tables, then check it works."""
        self.journal.data = j
        j["attempt"] = int(j.get("attempt", 0)) + (1 if j.get("step") == "rollback_failed" else 0)
        self.journal.step("rollback_started", best_effort=True)
        back_to = j["from_version"] if j["op"] == "upgrade" else j["to_version"]
        try:
            self.maint.enter(j["from_version"], j["to_version"])
        except OSError:
            pass  # a full disk must not stop the rollback itself
        try:
            files_restored = self._restore_files(j)
            self.journal.step("files_restored", best_effort=True, files_restored=files_restored)
            db_restored, kept = self._restore_db(j)
            self.journal.step("db_restored", best_effort=True, db_restored=db_restored, kept_tables=kept)
        except Exception as exc:  # noqa: BLE001 - report whatever broke the rollback
            log.critical("ROLLBACK FAILED: %s", exc)
            j["rollback_error"] = f"{exc.__class__.__name__}: {exc}"
            j["rollback_duration_ms"] = _ms(failure_at)
            self.journal.step("rollback_failed", best_effort=True)
            return self._finish_rollback(j)
        try:
            installed = read_installed_version(self.cfg.plugin_dir, self.cfg.version_from)
            if Version(installed) != Version(back_to):
                raise RollbackError(f"installed version is {installed} after rollback, expected {back_to}")
            run_smoke_test(
                self.cfg.smoke_command,
                self.cfg.smoke_url,
                self.cfg.plugin_dir,
                back_to,
                self.cfg.smoke_timeout_s,
            )
            j["rollback_error"] = None
        except (AgentError, SmokeTestError) as exc:
            j["rollback_error"] = f"smoke test after rollback failed: {exc}"
        j["rollback_seconds"] = time.monotonic() - failure_at
        j["rollback_duration_ms"] = _ms(failure_at)
        self.journal.step("rolled_back", best_effort=True)
        return self._finish_rollback(j)

    def _restore_files(self, j: dict[str, Any]) -> int:
        """Make the target tree live again, whatever state a crash left the names in."""
        files = j.get("files")
        if not files:
            return 0
        live = Path(files["live"])
        target = files["target_inode"]
        current = inode_of(live)
        if current != target:
            src = next((Path(p) for p in files["candidates"] if inode_of(Path(p)) == target), None)
            if src is None:
                raise RollbackError(
                    f"the previous plugin directory is gone (looked in {files['candidates']})"
                )
            if current is None:
                os.rename(src, live)
            elif not exchange(live, src):
                trash = Path(files["trash"])
                os.rename(live, trash)
                fsync_dir(trash.parent)
                faults.point("restore:between-renames")
                os.rename(src, live)
            fsync_dir(live.parent)
            faults.point("restore:swapped")
        return int(j.get("files_count") or count_files(live))

    def _drop_partial_snapshot(self, j: dict[str, Any]) -> None:
        db = self.db()
        d = j.get("db") or {}
        if db is None:
            return
        names = [snap for _l, snap, _k in d.get("pairs", [])]
        if d.get("options"):
            names.append(d["options"]["backup"])
        db.drop_tables(n for n in names if n.startswith(SNAP_PREFIX))

    def _restore_db(self, j: dict[str, Any]) -> tuple[bool, list[str]]:
        """Put every plugin table back in one atomic step; drop what the new version created."""
        d = j.get("db")
        db = self.db()
        if not d or db is None:
            return False, []
        if not d.get("complete"):
            # The snapshot was still being taken: the live tables were never touched.
            self._drop_partial_snapshot(j)
            return False, []
        present = db.tables()
        opts = d.get("options")
        if opts and opts["backup"] in present:
            if opts["kept"] not in present:
                db.copy_rows(opts["table"], opts["kept"], opts["where"])
            db.restore_rows(opts["table"], opts["where"], opts["backup"])
        todo = [p for p in d["pairs"] if p[1] in present]
        if todo:
            db.restore_snapshot(todo)
        faults.point("restore:tables-renamed")
        present = db.tables()
        for live, _snap, kept in d["pairs"]:
            if kept in present and live in present:
                db.after_restore(live, kept)
        ours = {n for p in d["pairs"] for n in p[1:]}
        if opts:
            ours |= {opts["backup"], opts["kept"]}
        set_aside: list[str] = []
        if "drop" in d:
            # A rollback long after the upgrade: tables the newer versions created may hold
            # customer rows by now. Empty ones go, the others are kept and reported.
            drop = []
            for table in d["drop"]:
                if table not in present or table in ours:
                    continue
                if db.row_count(table):
                    name = f"{table[:40]}_kept_{j['txid'][:8]}"
                    db.rename_table(table, name)
                    set_aside.append(name)
                else:
                    drop.append(table)
        else:
            # Within the maintenance window no order could be written: what the new version
            # created goes with it.
            drop = sorted(present - set(d.get("preexisting", [])) - ours)
            drop = [t for t in drop if not t.startswith(SNAP_PREFIX) and "_kept_" not in t]
        db.drop_tables(drop)
        if opts:
            db.drop_tables([opts["backup"]])
        j["dropped_tables"] = drop
        present = db.tables()
        kept = [p[2] for p in d["pairs"] if p[2] in present]
        if opts and opts["kept"] in present:
            kept.append(opts["kept"])
        kept += [t for t in set_aside if t in present]
        for name in (n for n in j.get("kept_tables", []) if n in present and n not in kept):
            kept.append(name)  # set aside by an earlier attempt of this same rollback
        return True, kept

    def _finish_rollback(self, j: dict[str, Any]) -> dict[str, Any]:
        """Reports, holds, cleanup. Runs after the rollback, never delays it."""
        tx = j["txid"]
        attempt = j.get("attempt", 0)
        ok = j.get("step") == "rolled_back" and not j.get("rollback_error")
        failed_hard = j.get("step") == "rollback_failed"
        back_to = j["from_version"] if j["op"] == "upgrade" else j["to_version"]
        left = j["to_version"] if j["op"] == "upgrade" else j["from_version"]
        db = self.db()
        kept_info: dict[str, int | None] = {}
        if ok or j.get("step") == "rolled_back":
            pairs = {p[2]: p[0] for p in (j.get("db") or {}).get("pairs", [])}
            for name in j.get("kept_tables", []):
                live = pairs.get(name)
                kept_info[name] = db.count_missing_rows(name, live) if (db and live) else None
            registry = self._load("kept.json", {})
            for name, rows in kept_info.items():
                registry.setdefault(name, {"created_at": _now(), "rows_after_backup": rows, "txid": tx})
            self._store("kept.json", registry)
        kept_text = ""
        if kept_info:
            kept_text = "; rows written after the backup kept in " + ", ".join(
                f"{n} ({'?' if c is None else c} new rows)" for n, c in kept_info.items()
            )
        error = j.get("error")
        rb_error = j.get("rollback_error")
        reason = (error or "rollback requested") + kept_text
        suffix = f"-r{attempt}" if attempt else ""
        if j["op"] == "upgrade":
            self._report(
                "upgrades",
                {
                    "from_version": j["from_version"],
                    "to_version": j["to_version"],
                    "status": "rolled_back" if ok else "failed",
                    "error": error + (f"; rollback: {rb_error}" if rb_error else "") + kept_text,
                    "duration_ms": j.get("rollback_duration_ms"),
                },
                key=f"{tx}-upgrade{suffix}",
            )
        self._report(
            "rollback",
            {"rollback_version": back_to, "status": "success" if ok else "failed", "reason": reason[:1000]},
            key=f"{tx}-rollback-log{suffix}",
        )
        complete = {
            "success": ok,
            "duration_ms": j.get("rollback_duration_ms"),
            "files_restored": int(j.get("files_restored") or 0),
            "db_restored": bool(j.get("db_restored")),
            "kept_tables": list(kept_info),
        }
        if rb_error:
            complete["error_message"] = rb_error
        if j.get("rollback_id"):
            self._report(f"rollback/{j['rollback_id']}/complete", complete, key=f"{tx}-complete{suffix}")
        else:
            init = self._report(
                "rollback/initiate",
                {
                    "from_version": left,
                    "to_version": back_to,
                    "trigger": j.get("trigger", "automatic"),
                    "reason": (error or "rollback")[:1000],
                },
                key=f"{tx}-initiate",
            )
            self._report(
                "rollback/{rollback_id}/complete", complete, key=f"{tx}-complete{suffix}", depends_on=init
            )
        # A crash says nothing about the release: only a real failure puts it on hold.
        if not j.get("interrupted"):
            self._hold(
                left,
                j.get("release_sha256") if j["op"] == "upgrade" else None,
                f"rolled back ({j.get('trigger')})",
            )
        if not failed_hard:
            self.maint.leave()
            target = (j.get("files") or {}).get("target_inode")
            self._cleanup_paths(j, target, ("download", "staging", "trash", "aside", "scratch"))
            if j["op"] == "rollback":
                self._after_manual_rollback(j)
            self.journal.clear()
        out = result(
            "failed" if j["op"] == "upgrade" else ("success" if ok else "failed"),
            j["from_version"],
            j["to_version"],
            rollback_status="success" if ok else "failed",
            reason=reason,
            error=(error if j["op"] == "upgrade" else None)
            if not rb_error
            else f"{error}; rollback failed: {rb_error}"
            if error
            else rb_error,
            files_restored=int(j.get("files_restored") or 0),
            db_restored=bool(j.get("db_restored")),
            rollback_duration_ms=j.get("rollback_duration_ms"),
            rollback_seconds=j.get("rollback_seconds"),
            kept_tables=kept_info,
            dropped_tables=j.get("dropped_tables", []),
            trigger=j.get("trigger"),
        )
        self._flush()
        return out

    def _after_manual_rollback(self, j: dict[str, Any]) -> None:
        gens = self._load("generations.json", [])
        self._store("generations.json", [g for g in gens if g.get("txid") != j.get("generation")])
        created_by = self._load("current.json", {}).get("created_by_version", {})
        back_to = Version(j["to_version"])
        self._store(
            "current.json",
            {
                "version": j["to_version"],
                "txid": j["txid"],
                "created_tables": [],
                "created_by_version": {v: t for v, t in created_by.items() if Version(v) <= back_to},
                "committed_at": _now(),
            },
        )

    # ---------------------------------------------------- manual / forced rollback --
    def _forced_rollbacks(self, installed: str) -> list[dict[str, Any]]:
        try:
            pending = self.client.pending_rollbacks(self.cfg.plugin_name, self.cfg.merchant_id)
        except ControlPlaneError as exc:
            log.warning("cannot fetch pending rollbacks: %s", exc)
            return []
        results = []
        for item in pending:
            rid = item.get("rollback_id")
            to_v = item.get("to_version")
            if not rid or not to_v:
                continue
            log.warning("operator-forced rollback %s to %s", rid, to_v)
            results.append(
                self.rollback_to(to_v, trigger="operator_forced", rollback_id=rid, reason=item.get("reason"))
            )
        return results

    def rollback_to(
        self, version: str, trigger: str = "manual", rollback_id: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """Restore a kept version: instantly from the previous generation, else from its archive."""
        start = time.monotonic()
        from_v = self.installed_version()
        Version(version)
        if Version(from_v) == Version(version):
            if rollback_id:
                self._report(
                    f"rollback/{rollback_id}/complete",
                    {"success": True, "duration_ms": 0, "files_restored": 0, "db_restored": False},
                    key=f"forced-{rollback_id}-complete",
                )
                self._flush()
            return result(
                "success" if rollback_id else "skipped",
                from_v,
                version,
                reason=f"already on version {version}",
                rollback_status="success" if rollback_id else "not_required",
            )
        tx = uuid.uuid4().hex[:12]
        self._prepare_work_dir()
        try:
            j = self._plan_rollback(tx, from_v, version)
        except (AgentError, OSError) as exc:
            err = f"cannot roll back to {version}: {exc}"
            if rollback_id:
                self._report(
                    f"rollback/{rollback_id}/complete",
                    {
                        "success": False,
                        "duration_ms": _ms(start),
                        "files_restored": 0,
                        "db_restored": False,
                        "error_message": err,
                    },
                    key=f"{tx}-complete",
                )
            else:
                init = self._report(
                    "rollback/initiate",
                    {
                        "from_version": from_v,
                        "to_version": version,
                        "trigger": trigger,
                        "reason": reason or "manual rollback",
                    },
                    key=f"{tx}-initiate",
                )
                self._report(
                    "rollback/{rollback_id}/complete",
                    {
                        "success": False,
                        "duration_ms": _ms(start),
                        "files_restored": 0,
                        "db_restored": False,
                        "error_message": err,
                    },
                    key=f"{tx}-complete",
                    depends_on=init,
                )
            self._flush()
            return result(
                "failed", from_v, version, rollback_status="failed", error=err, duration_ms=_ms(start)
            )
        j.update(
            trigger=trigger,
            rollback_id=rollback_id,
            error=reason or f"{trigger.replace('_', '-')} rollback to {version}",
        )
        self.journal.begin(j, "rollback_prepared")
        out = self._run_rollback(j, time.monotonic())
        out["duration_ms"] = _ms(start)
        return out

    def _plan_rollback(self, tx: str, from_v: str, version: str) -> dict[str, Any]:
        """Everything a rollback needs, made ready before the journal starts it."""
        cfg = self.cfg
        live = cfg.plugin_dir
        # Tables created by the migrations of every version newer than the target.
        created_by = self._load("current.json", {}).get("created_by_version", {})
        created = sorted({t for v, ts in created_by.items() if Version(v) > Version(version) for t in ts})
        j: dict[str, Any] = {
            "txid": tx,
            "op": "rollback",
            "plugin": cfg.plugin_name,
            "from_version": from_v,
            "to_version": version,
            "started_at": _now(),
            "paths": {"trash": str(self.work / f"failed-{from_v}-{tx}")},
        }
        gen = next((g for g in self._load("generations.json", []) if g.get("version") == version), None)
        if gen and inode_of(Path(gen["dir"])) == gen.get("inode"):
            j["generation"] = gen["txid"]
            j["files"] = {
                "live": str(live),
                "target_inode": gen["inode"],
                "other_inode": inode_of(live),
                "candidates": [gen["dir"]],
                "trash": j["paths"]["trash"],
            }
            j["paths"]["aside"] = gen["dir"]
            j["files_count"] = count_files(Path(gen["dir"]))
            gdb = gen.get("db")
            if gdb and self.db() is not None:
                pairs = [[lv, snap, f"{lv[:40]}_kept_{tx[:8]}"] for lv, snap in gdb["pairs"]]
                opts = (
                    dict(gdb["options"], kept=f"{gdb['options']['table'][:40]}_kept_{tx[:8]}")
                    if gdb.get("options")
                    else None
                )
                j["db"] = {"pairs": pairs, "options": opts, "drop": created, "complete": True}
            return j
        archive = next(
            (
                a
                for a in backups.list_archives(self.state / "backups")
                if a.plugin == cfg.plugin_name and a.version == version
            ),
            None,
        )
        if archive is None:
            raise RollbackError(f"no kept copy or backup archive of version {version}")
        key = load_or_create_key(cfg.backup_key_file, cfg.backup_key_b64, create=False)
        staging = self.work / f"staging-{tx}"
        scratch = self.work / f"restore-{tx}"
        j["paths"].update(staging=str(staging), scratch=str(scratch))
        manifest = backups.restore_archive(archive.path, key, staging, scratch)
        sync_filesystem(staging)
        j["files"] = {
            "live": str(live),
            "target_inode": inode_of(staging),
            "other_inode": inode_of(live),
            "candidates": [str(staging)],
            "trash": j["paths"]["trash"],
        }
        j["files_count"] = count_files(staging)
        db = self.db()
        section = manifest.get("db")
        if db is not None and section:
            pairs = []
            for i, table in enumerate(section["tables"]):
                name = f"{SNAP_PREFIX}{tx[:8]}_{i}"
                db.create_from_ddl(table["ddl"], table["name"], name)
                db.insert_rows(name, table["columns"], backups.read_rows(scratch / f"{table['name']}.jsonl"))
                pairs.append([table["name"], name, f"{table['name'][:40]}_kept_{tx[:8]}"])
            opts = None
            if section.get("options"):
                o = section["options"]
                bname = f"{SNAP_PREFIX}{tx[:8]}_opt"
                db.execute(f"CREATE TABLE {db.q(bname)} AS SELECT * FROM {db.q(o['table'])} WHERE 1 = 0")
                db.insert_rows(bname, o["columns"], backups.read_rows(scratch / "options.jsonl"))
                opts = {
                    "table": o["table"],
                    "where": o["where"],
                    "backup": bname,
                    "kept": f"{o['table'][:40]}_kept_{tx[:8]}",
                }
            j["db"] = {"pairs": pairs, "options": opts, "drop": created, "complete": True}
        remove_tree(scratch)
        return j

    # ------------------------------------------------------------ status / prune --
    def status(self) -> dict[str, Any]:
        """What is installed, kept, pending -- for ``molam-agent status``."""
        try:
            installed = self.installed_version()
        except AgentError as exc:
            installed = None
            log.error("%s", exc)
        j = Journal(self.state).load()
        from .maintenance import is_active

        return {
            "status": "ok" if not j else "in_progress",
            "plugin": self.cfg.plugin_name,
            "plugin_dir": str(self.cfg.plugin_dir),
            "installed_version": installed,
            "operation": {k: j.get(k) for k in ("op", "step", "from_version", "to_version", "txid")}
            if j
            else None,
            "maintenance": is_active(self.cfg.plugin_dir),
            "outbox_pending": len(self.outbox),
            "outbox_refused": len(list(self.outbox.dead.glob("*.json"))),
            "instant_rollback_to": [g["version"] for g in self._load("generations.json", [])],
            "archives": [
                {
                    "version": a.version,
                    "created_at": a.created_at.isoformat(),
                    "size": a.size,
                    "path": str(a.path),
                }
                for a in backups.list_archives(self.state / "backups")
                if a.plugin == self.cfg.plugin_name
            ],
            "holds": self._load("holds.json", {}),
            "kept_tables": self._load("kept.json", {}),
        }

    def prune(self, now: float | None = None) -> dict[str, Any]:
        """Delete archives, kept copies and kept tables past ``retention_days``."""
        now = now or _now()
        cutoff = now - self.cfg.retention_days * 86400
        removed_archives = []
        for a in backups.list_archives(self.state / "backups"):
            if a.created_at.timestamp() < cutoff:
                a.path.unlink(missing_ok=True)
                removed_archives.append(a.path.name)
        gens = self._load("generations.json", [])
        keep = [g for g in gens if g.get("created_at", now) >= cutoff]
        for g in gens:
            if g not in keep:
                self._delete_generation(g)
        self._store("generations.json", keep)
        registry = self._load("kept.json", {})
        dropped = [n for n, info in registry.items() if info.get("created_at", now) < cutoff]
        db = self.db()
        if dropped and db is not None:
            db.drop_tables(dropped)
        self._store("kept.json", {n: i for n, i in registry.items() if n not in dropped})
        orphans = self._cleanup_orphans()
        self.outbox.prune_results(self.cfg.retention_days * 86400)
        return {
            "status": "success",
            "removed_archives": removed_archives,
            "removed_generations": [g["version"] for g in gens if g not in keep],
            "dropped_kept_tables": dropped,
            "removed_orphans": orphans,
        }

    def _cleanup_orphans(self) -> list[str]:
        """Leftovers of runs killed while preparing (before their journal referenced them)."""
        if self.journal.load():
            return []
        referenced = {Path(g["dir"]).name for g in self._load("generations.json", [])}
        removed = []
        if self.work.is_dir():
            for entry in self.work.iterdir():
                if (
                    entry.name.split("-", 1)[0]
                    in ("staging", "failed", "download", "prev", "restore", "dryrun")
                    and entry.name not in referenced
                ):
                    remove_tree(entry)
                    removed.append(entry.name)
        db = self.db()
        if db is not None:
            refs = set()
            for g in self._load("generations.json", []):
                gdb = g.get("db") or {}
                refs |= {snap for _l, snap in gdb.get("pairs", [])}
                if gdb.get("options"):
                    refs.add(gdb["options"]["backup"])
            stale = [t for t in db.tables() if t.startswith(SNAP_PREFIX) and t not in refs]
            db.drop_tables(stale)
            removed += stale
        return removed

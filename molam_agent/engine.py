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

import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

from . import backup as backups
from .base import _ms, _now, log, result
from .crypto import load_or_create_key
from .dbflow import DatabaseFlowMixin, StepTimeout
from .errors import (
    AgentError,
    ConfigError,
    ControlPlaneError,
    VerificationError,
)
from .fsutil import (
    count_files,
    inode_of,
    remove_tree,
    swap_dirs,
    sync_filesystem,
)
from .housekeeping import HousekeepingMixin
from .journal import LIVE_UNTOUCHED, ROLLBACK_STEPS
from .release import Release, download, extract_zip, verify_checksum, verify_release
from .rollback import RollbackMixin
from .smoke import run_smoke_test
from .versions import Version, read_installed_version


class Agent(DatabaseFlowMixin, RollbackMixin, HousekeepingMixin):
    """One plugin installation on this host, as described by its configuration."""

    # ----------------------------------------------------------------- recovery --
    def recover(self) -> dict[str, Any] | None:
        """Finish or undo an operation a crash interrupted. None when there was none."""
        j = self.journal.load()
        # Plaintext rows (backup spools, restore scratch) of a killed run: never left on disk.
        backups.remove_plaintext(self.state / "backups", self.work, keep=(j or {}).get("paths"))
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
        """End an upgrade that never touched the live plugin: clean up, report the failure."""
        self._cleanup_paths(j, keep_inode=None)
        if j.get("archive") and j.get("step") == "prepared":
            # Killed or failed while writing the backup: drop the partial archive and tell
            # the control plane the backup it was told about did not complete.
            archive = Path(j["archive"])
            archive.with_name(f".{archive.name}.part").unlink(missing_ok=True)
            announced = self.outbox.result(f"{j['txid']}-backup") is not None or any(
                self.outbox.dir.glob(f"*-{j['txid']}-backup.json")
            )
            if announced and not archive.exists():
                self._report(
                    "backup/{backup_id}",
                    {"backup_status": "failed"},
                    key=f"{j['txid']}-backup-done",
                    method="PATCH",
                    depends_on=f"{j['txid']}-backup",
                )
        if j.get("db"):
            self._drop_snapshot_artifacts(j["db"])
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
            if exc.status in (401, 403):
                # A wrong token or merchant id is a configuration error, not an outage.
                raise ConfigError(f"the control plane refused this agent's credential: {exc}") from exc
            what = "unreachable" if exc.status is None else "unavailable"
            return result(
                "skipped",
                from_v,
                None,
                reason=f"control plane {what}, nothing changed: {exc}",
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
        """The release to install: from the decision, or (``--force``) the registered releases."""
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
            verify_release(pkg, release, self.cfg)
            files = extract_zip(pkg, scratch / "tree", self.cfg.max_unpacked_bytes)
            staged_v = read_installed_version(scratch / "tree", self.cfg.version_from)
            migrations = sorted(p.name for p in (scratch / "tree" / "migrations").glob("*.sql"))
            db = self.db()
            done = db.applied_migrations(self.cfg.plugin_name, self.site) if db else {}
            db_plan = self._plan_db(scratch / "tree", db, "dryrun00")
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
            "migration_mode": db_plan["mode"] if db_plan else None,
            "migration_classes": {f["name"]: f["class"] for f in db_plan["files"]} if db_plan else {},
            "tables_copied": [p[0] for p in db_plan["pairs"]] if db_plan else [],
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
        """Steps 4 to 12 of the flow (docs/agent.md); any failure after step 6 rolls back."""
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
            self._preflight(None)
            self._backup(tx, from_v)
            self.journal.step("backed_up")
            pkg = Path(j["paths"]["download"])
            verify_checksum(download(release, pkg, cfg.max_download_bytes), release.sha256)
            verify_release(pkg, release, cfg)
            self.journal.step("downloaded")
            migrations = self._stage(pkg, Path(j["paths"]["staging"]), release.version)
            plan = self._plan_db(Path(j["paths"]["staging"]), self.db(), tx)
            self.journal.step(
                "staged", migrations=migrations, files_count=count_files(cfg.plugin_dir), db=plan
            )
            self._preflight(self.db())
            self._snapshot()
        except Exception as exc:  # noqa: BLE001 - e.g. the database is down during the backup
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
            self._save_options()
            self.maint.pin()  # from the swap to the end of the migrations, files and schema differ
            self._swap()
            self._migrate(release.version)
            self.maint.pin(False)
            if self.maint.overdue():
                raise StepTimeout(f"checkout paused longer than {self.maint.max_pause_s:g}s; rolling back")
            self._verify(release.version)
            self.journal.step("verified")
        except Exception as exc:  # noqa: BLE001 - any failure rolls back
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
                "db_snapshot_name": f"{self.snap_prefix()}{tx[:8]}" if cfg.db_url else None,
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

    def _swap(self) -> None:
        """Exchange the staged tree with the live one, recording both inodes first."""
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

    def _verify(self, version: str) -> None:
        """The installed version must be the target, then the smoke test must pass."""
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
            if db.get("mode") == "snapshot":
                # Committed: the capture triggers and the copies go now. A later rollback of
                # this release cannot restore its tables without losing the shop's rows since.
                self._drop_snapshot_artifacts(db)
            gen = {
                "txid": tx,
                "version": j["from_version"],
                "dir": j["paths"]["aside"],
                "inode": files.get("target_inode"),
                "created_at": _now(),
                "db": {
                    "mode": db.get("mode"),
                    "site": db.get("site"),
                    "files": db.get("files", []),
                    "options": db.get("options"),
                }
                if db
                else None,
            }
            # Only the immediately previous version is kept ready for an instant rollback;
            # older versions stay restorable from their encrypted archives.
            retired = gens
            self._store("generations.json", [gen])
            for old in retired:
                self._delete_generation(old)
        current = self._load("current.json", {})
        created_by = current.get("created_by_version", {})
        if j.get("created_tables"):
            created_by[j["to_version"]] = j["created_tables"]
        # What a later rollback past this version must undo (down files travel with it).
        by_version = current.get("db_by_version", {})
        if (j.get("db") or {}).get("files"):
            by_version[j["to_version"]] = {
                "mode": j["db"]["mode"],
                "files": [dict(f, sha=f["sha"]) for f in j["db"]["files"]],
            }
        self._store(
            "current.json",
            {
                "version": j["to_version"],
                "txid": tx,
                "created_tables": j.get("created_tables", []),
                "created_by_version": created_by,
                "db_by_version": by_version,
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

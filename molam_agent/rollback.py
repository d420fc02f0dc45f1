"""Rollback: put the previous version back -- files, tables, then proof that checkout works.

Used for the automatic rollback of a failed upgrade, for ``rollback --to`` and for
operator-forced rollbacks. Every operation checks the real state before acting, so running
it again after a crash (recovery) converges on the same result.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from . import backup as backups
from . import faults
from .base import AgentBase, _ms, _now, log, result
from .crypto import load_or_create_key
from .errors import (
    AgentError,
    ControlPlaneError,
    RollbackError,
    SmokeTestError,
)
from .fsutil import (
    count_files,
    exchange,
    fsync_dir,
    inode_of,
    remove_tree,
    sync_filesystem,
)
from .smoke import run_smoke_test
from .trust import forced_rollback_refusal, report_refused_forced_rollback
from .versions import Version, read_installed_version


class RollbackMixin(AgentBase):
    """Restore a target version in one swap and one atomic table rename."""

    # ----------------------------------------------------------------- rollback --
    def _run_rollback(self, j: dict[str, Any], failure_at: float) -> dict[str, Any]:
        """Put the target version back: files, then tables, then check it works."""
        self.journal.data = j
        j["attempt"] = int(j.get("attempt", 0)) + (1 if j.get("step") == "rollback_failed" else 0)
        j["failed_at"] = time.time() - (time.monotonic() - failure_at)
        self.journal.step("rollback_started", best_effort=True)
        back_to = j["from_version"] if j["op"] == "upgrade" else j["to_version"]
        try:
            self.maint.enter(j["from_version"], j["to_version"])
            # Old files may meet new schema until the tables are back: the flag must not expire.
            self.maint.pin()
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
            merged = j.get("merged_rows") or {}
            for name in j.get("kept_tables", []):
                kept_info[name] = merged.get(name)
            registry = self._load("kept.json", {})
            for name, rows in kept_info.items():
                # Recorded only once its rows were merged back: only then may prune drop it.
                registry.setdefault(
                    name,
                    {
                        "created_at": _now(),
                        "merged_rows": rows,
                        "merged": True,
                        "txid": tx,
                        "site": self.site,
                    },
                )
            self._store("kept.json", registry)
            if db is not None:
                self._after_rollback_db(j)
        kept_text = ""
        if kept_info:
            kept_text = "; rows written during the window merged back from " + ", ".join(
                f"{n} ({'?' if c is None else c} rows)" for n, c in kept_info.items()
            )
        error = j.get("error")
        rb_error = j.get("rollback_error")
        reason = (error or "rollback requested") + kept_text
        suffix = f"-r{attempt}" if attempt else ""
        # A retried rollback (attempt > 0) reports a new rollback, but not the upgrade again:
        # the control plane already counted that upgrade as a failure.
        if j["op"] == "upgrade" and not attempt:
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
                key=f"{tx}-initiate{suffix}",
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
        if failed_hard:
            # Checkout stays paused (pinned flag) until a recovery succeeds; the control plane
            # raises a critical alert on the failed completion reported above.
            log.critical("checkout stays paused: rollback failed, the next run retries it")
            self.maint.stop_heartbeat()
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
            rollback_breakdown_ms=_breakdown(j),
            kept_tables=kept_info,
            dropped_tables=j.get("dropped_tables", []),
            trigger=j.get("trigger"),
        )
        self._flush()
        return out

    def _after_manual_rollback(self, j: dict[str, Any]) -> None:
        """Record the restored version as current; its generation is used up."""
        gens = self._load("generations.json", [])
        self._store("generations.json", [g for g in gens if g.get("txid") != j.get("generation")])
        current = self._load("current.json", {})
        created_by = current.get("created_by_version", {})
        by_version = current.get("db_by_version", {})
        back_to = Version(j["to_version"])
        self._store(
            "current.json",
            {
                "version": j["to_version"],
                "txid": j["txid"],
                "created_tables": [],
                "created_by_version": {v: t for v, t in created_by.items() if Version(v) <= back_to},
                "db_by_version": {v: p for v, p in by_version.items() if Version(v) <= back_to},
                "committed_at": _now(),
            },
        )

    # ---------------------------------------------------- manual / forced rollback --
    def _forced_rollbacks(self, installed: str) -> list[dict[str, Any]]:
        """Perform the operator-forced rollbacks waiting for this merchant's plugin."""
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
            refusal = forced_rollback_refusal(
                item, self.installed_version(), self.cfg.forced_rollback_max_age_s
            )
            if refusal:
                report_refused_forced_rollback(self, item, refusal)
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
        except Exception as exc:  # noqa: BLE001 - nothing changed yet: report and stop
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
        undo = self._undo_plan(version)
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
            gdb = gen.get("db") or {}
            if self.db() is not None:
                opts = gdb.get("options")
                if opts and opts.get("backup") not in self.db().tables():
                    opts = None
                j["db"] = dict(undo, options=opts)
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
        if db is not None:
            # The archive's table rows are NOT put back: that would revert every order taken
            # since. The schema goes back through the down files of the newer releases; the
            # plugin's option rows come from the archive.
            opts = None
            if section and section.get("options"):
                o = section["options"]
                bname = f"{self.snap_prefix()}{tx[:8]}_opt"
                db.drop_tables([bname])
                db.execute(f"CREATE TABLE {db.q(bname)} AS SELECT * FROM {db.q(o['table'])} WHERE 1 = 0")
                db.insert_rows(bname, o["columns"], backups.read_rows(scratch / "options.jsonl"))
                opts = {"table": o["table"], "where": o["where"], "backup": bname, "saved": True}
            j["db"] = dict(undo, options=opts)
        remove_tree(scratch)
        return j

    def _undo_plan(self, version: str) -> dict[str, Any]:
        """The migrations of every committed release newer than ``version``, to undo newest first."""
        by_version = self._load("current.json", {}).get("db_by_version", {})
        files: list[dict[str, Any]] = []
        for v in sorted(by_version, key=Version):
            if Version(v) <= Version(version):
                continue
            plan = by_version[v]
            if plan.get("mode") == "snapshot":
                raise RollbackError(
                    f"version {v} changed existing tables without down migrations (snapshot mode);"
                    f" rolling back past it would lose the rows written since: roll forward instead"
                )
            files += plan.get("files", [])
        return {"mode": "down", "site": self.site, "files": files, "pairs": [], "complete": True}


def _breakdown(j: dict[str, Any]) -> dict[str, float] | None:
    """Where the rollback's time went, from the journal's step timestamps (milliseconds)."""
    start = j.get("failed_at")
    if not start:
        return None
    at = {name: t for name, t in j.get("steps", []) if t >= start - 0.001}
    marks = [
        ("prepare", "rollback_started"),
        ("files", "files_restored"),
        ("tables", "db_restored"),
        ("smoke_test", "rolled_back"),
    ]
    out: dict[str, float] = {}
    prev = start
    for label, step in marks:
        if step not in at:
            return out or None
        out[label] = round((at[step] - prev) * 1000, 1)
        prev = at[step]
    return out

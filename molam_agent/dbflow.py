"""The database half of an upgrade and of its rollback, decided by the migration policy.

At staging (before checkout pauses) every pending migration file is classified
(``policy.py``) and the release gets one *mode*:

``expand``
    Only additive statements. No table is copied. Rollback puts the files and the plugin's
    option rows back; the additive schema stays and stays recorded (old code ignores it), so
    no live row is touched and none can be lost.
``down``
    Contract statements, each such file shipping ``migrations/down/<same name>``. Rollback runs
    the down files of the files this upgrade applied, newest first, on the live tables, so
    every row written meanwhile stays.
``snapshot``
    Contract statements without down files, allowed only with ``database.allow_snapshot``
    (MySQL/MariaDB and PostgreSQL). Before the pause the agent installs capture triggers on
    the tables the contract statements touch, then copies them (no pause: a consistent read).
    Rollback renames the copies back in one atomic step and *merges back* every write the shop
    made to the live tables meanwhile -- rows inserted or updated are upserted (by primary key;
    rows compared whole), rows deleted are deleted, the last operation on a key winning --
    before the set-aside tables may ever be pruned. No table is ever dropped that the
    migrations did not create -- in fact the rollback drops no table at all.

Every wait on a lock is bounded (``database.lock_timeout_s``, retried ``lock_retries`` times),
and the pause does not start while a long transaction may hold the plugin's tables.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from . import faults
from .base import AgentBase, log
from .db import MIGRATIONS_TABLE, Database
from .errors import ConfigError, MigrationError, RollbackError, VerificationError
from .policy import (
    CONTRACT,
    EXPAND,
    REFUSED,
    classify_script,
    expand_tables,
    referenced_tables,
    script_class,
    unquote,
)
from .progress import timed


class StepTimeout(MigrationError):
    """The pause lasted longer than ``maintenance.max_pause_s``: roll back."""


class DatabaseFlowMixin(AgentBase):
    """Plan, prepare, migrate and undo the database side of an upgrade."""

    # ------------------------------------------------------------------ planning --
    def _options_table(self) -> str | None:
        return self.cfg.db_options.table if self.cfg.db_options is not None else None

    def _plan_db(self, staging: Path, db: Database | None, tx: str) -> dict[str, Any] | None:
        """Classify the pending migrations of the staged release; refuse what is unsafe."""
        if db is None:
            return None
        done = db.applied_migrations(self.cfg.plugin_name, self.site)
        files = []
        for path in sorted((staging / "migrations").glob("*.sql")):
            if path.name in done:
                continue
            data = path.read_bytes()
            text = data.decode("utf-8")
            statements = classify_script(text, self.cfg.db_tables, self._options_table())
            cls = script_class(statements)
            if cls == REFUSED:
                bad = next(s for s in statements if s.cls == REFUSED)
                raise VerificationError(f"migration {path.name} refused: {bad.reason} ({_short(bad.sql)})")
            down_path = staging / "migrations" / "down" / path.name
            down = down_path.read_text("utf-8") if down_path.is_file() else None
            if down is not None:
                for st in classify_script(down, self.cfg.db_tables, self._options_table()):
                    if st.cls == REFUSED:
                        raise VerificationError(
                            f"down migration {path.name} refused: {st.reason} ({_short(st.sql)})"
                        )
            touched = sorted(
                {unquote(n) for s in statements for n in referenced_tables(s.sql)}
                | {s.table for s in statements if s.table}
            )
            files.append(
                {
                    "name": path.name,
                    "sha": hashlib.sha256(data).hexdigest(),
                    "class": cls,
                    "tables": touched,
                    "contract_tables": sorted(
                        {
                            unquote(n)
                            for s in statements
                            if s.cls == CONTRACT
                            for n in referenced_tables(s.sql)
                        }
                        | {s.table for s in statements if s.cls == CONTRACT and s.table}
                    ),
                    "creates": sorted({s.table for s in statements if s.kind == "create_table" and s.table}),
                    "inserts_options": any(s.kind == "insert_option" for s in statements),
                    "down": down,
                }
            )
        contract = [f for f in files if f["class"] == CONTRACT]
        if not contract:
            mode = EXPAND
        elif all(f["down"] is not None for f in contract):
            mode = "down"
        elif self.cfg.db_allow_snapshot and db.engine != "sqlite":
            mode = "snapshot"
        else:
            names = ", ".join(f["name"] for f in contract if f["down"] is None)
            raise VerificationError(
                f"migrations {names} change existing schema or rows and ship no migrations/down/ file;"
                " refusing to upgrade (set database.allow_snapshot = true to allow a snapshot-mode"
                " upgrade on MySQL/MariaDB or PostgreSQL)"
            )
        plan: dict[str, Any] = {
            "engine": db.engine,
            "site": self.site,
            "mode": mode,
            "files": files,
            "pairs": [],
            "options": None,
            "complete": False,
        }
        if mode == "snapshot":
            present = db.tables()
            created = {t for f in files for t in f["creates"]}
            tables = sorted(
                {t for f in contract for t in f["contract_tables"] if t in present and t not in created}
            )
            for table in tables:
                # Refused here, before anything is paused or copied: a key the change log
                # cannot hold exactly would have its window write lost by a rollback.
                refusal = db.capture_refusal(table)
                if refusal:
                    raise VerificationError(
                        f"snapshot mode refused: {refusal}; ship migrations/down/ files for"
                        f" {', '.join(f['name'] for f in contract if table in f['contract_tables'])}"
                        " instead, so the rollback runs them on the live tables"
                    )
            tx = tx[:8]
            prefix = self.snap_prefix()
            plan["pairs"] = [[t, f"{prefix}{tx}_{i}", self.kept_name(t, tx)] for i, t in enumerate(tables)]
            plan["chg"] = f"{prefix}{tx}_chg"
            plan["triggers"] = [[t, f"molam_trg_{self.site}_{tx}_{i}"] for i, t in enumerate(tables)]
        return plan

    def _preflight(self, db: Database | None) -> None:
        """Refuse, before anything is paused, what would fail or hang inside the pause."""
        live = self.cfg.plugin_dir
        if is_mount_point(live):
            raise ConfigError(
                f"plugin directory {live} is a mount point: it cannot be swapped atomically"
                " (rename fails with EBUSY); mount its parent instead"
            )
        if db is None or self.cfg.db_long_transaction_s <= 0:
            return
        tables = expand_tables(self.cfg.db_tables, db.tables())
        if self.cfg.db_options is not None:
            tables.append(self.cfg.db_options.table)
        for attempt in range(self.cfg.db_lock_retries):
            holders = db.long_transactions(tables, self.cfg.db_long_transaction_s)
            if not holders:
                return
            if attempt + 1 < self.cfg.db_lock_retries:
                time.sleep(self.cfg.db_lock_timeout_s)
        raise MigrationError(
            "long transactions may hold the plugin's tables ("
            + ", ".join(holders[:5])
            + "); not pausing checkout behind them, the next run tries again"
        )

    # ------------------------------------------------------------- preparation --
    def _snapshot(self) -> None:
        """Snapshot mode only: capture triggers, then a copy of each contract table (no pause)."""
        j = self.journal.data
        d = j.get("db")
        db = self.db()
        self.journal.step("snapshot_started")
        if d and db is not None and d["mode"] == "snapshot":
            db.create_change_log(d["chg"])
            for (live, snap, _kept), (_t, trigger) in zip(d["pairs"], d["triggers"]):
                db.with_lock_retries(
                    lambda live=live, trigger=trigger: db.install_capture(
                        live, trigger + "_w", d["chg"], live, "w"
                    ),
                    self.cfg.db_lock_retries,
                )
                with timed(f"copy {live}"):
                    db.copy_table(live, snap)
                db.install_capture(snap, trigger + "_r", d["chg"], live, "r")
            d["complete"] = True
        self.journal.step("snapshot_done")

    def _save_options(self) -> None:
        """Inside the pause: a copy of the plugin's option rows (a handful of rows)."""
        d = self.journal.data.get("db")
        db = self.db()
        opt = self.cfg.db_options
        if not d or db is None or opt is None or opt.table not in db.tables():
            return
        tx = self.journal.data["txid"][:8]
        d["options"] = {"table": opt.table, "where": opt.where, "backup": f"{self.snap_prefix()}{tx}_opt"}
        self.journal.save()
        db.drop_tables([d["options"]["backup"]])
        db.with_lock_retries(
            lambda: db.copy_rows(opt.table, d["options"]["backup"], opt.where), self.cfg.db_lock_retries
        )
        d["options"]["saved"] = True
        self.journal.save()

    def _drop_snapshot_artifacts(self, d: dict[str, Any], snapshots: bool = True) -> None:
        """Remove capture triggers and the change log (and, with ``snapshots``, the copies)."""
        db = self.db()
        if db is None or not d:
            return
        present = db.tables()
        for (live, snap, kept), (_t, trigger) in zip(d.get("pairs", []), d.get("triggers", [])):
            for table in (live, snap, kept):
                if table in present:
                    db.drop_capture(table, trigger + "_w")
                    db.drop_capture(table, trigger + "_r")
            if snapshots and snap.startswith(self.snap_prefix()):
                db.drop_tables([snap])
        if d.get("chg") and d["chg"].startswith(self.snap_prefix()):
            db.drop_tables([d["chg"]])

    # --------------------------------------------------------------- migrations --
    def _migrate(self, version: str) -> None:
        """Run the release's pending migrations from the live tree, one recorded file at a time."""
        j = self.journal.data
        d = j.get("db")
        db = self.db()
        if db is None or not d or not d["files"]:
            self.journal.step("migrations_done", created_tables=[])
            return
        self.journal.step("migrations_started")
        db.ensure_migrations_table()
        before = db.tables()
        applied = []
        if d["mode"] == "snapshot":
            db.set_migrating(True)
        try:
            for f in d["files"]:
                if self.maint.overdue():
                    raise StepTimeout(
                        f"checkout paused longer than {self.maint.max_pause_s:g}s; rolling back"
                    )
                path = self.cfg.plugin_dir / "migrations" / f["name"]
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != f["sha"]:
                    raise VerificationError(f"migration {f['name']} changed after staging")
                statements = classify_script(data.decode("utf-8"), self.cfg.db_tables, self._options_table())
                d["running"] = f["name"]
                self.journal.save()
                try:
                    db.run_migration_file(
                        self.cfg.plugin_name,
                        self.site,
                        version,
                        f["name"],
                        f["sha"],
                        statements,
                        self.cfg.db_lock_retries,
                    )
                except Exception as exc:
                    raise MigrationError(f"migration {f['name']} failed: {exc}") from exc
                applied.append(f["name"])
        finally:
            if d["mode"] == "snapshot":
                db.set_migrating(False)
            faults.point("migrations:applied")
        created = sorted(db.tables() - before)
        d["running"] = None
        self.journal.step("migrations_done", applied_migrations=applied, created_tables=created)

    # ------------------------------------------------------------------ rollback --
    def _restore_db(self, j: dict[str, Any]) -> tuple[bool, list[str]]:
        """Undo the database side per the release's mode; return (restored?, kept tables)."""
        d = j.get("db")
        db = self.db()
        if not d or db is None:
            return False, []
        retries = self.cfg.db_lock_retries
        kept: list[str] = []
        merged: dict[str, int] = dict(j.get("merged_rows") or {})
        mode = d.get("mode")
        if mode == "snapshot" and d.get("complete"):
            present = db.tables()
            todo = []
            for live, snap, kept_name in d["pairs"]:
                if snap in present:
                    todo.append((live, snap, kept_name))
                elif kept_name not in present:
                    # Never take a missing copy for "already restored".
                    raise RollbackError(f"snapshot {snap} of {live} is missing; {live} was not restored")
            for live, snap, _k in todo:
                db.raise_auto_increment(snap, live)
            if todo:
                db.with_lock_retries(lambda: db.restore_snapshot(todo), retries)
            faults.point("restore:tables-renamed")
            if not d.get("merged"):  # a re-run after a crash past the merge skips it
                if d["chg"] not in db.tables():
                    raise RollbackError(f"the change log {d['chg']} is missing; rows cannot be merged back")
                for live, _snap, kept_name in d["pairs"]:
                    n = db.with_lock_retries(
                        lambda live=live, kept_name=kept_name: db.merge_back(live, kept_name, d["chg"], live),
                        retries,
                    )
                    merged[kept_name] = merged.get(kept_name, 0) + n
                faults.point("restore:merged")  # merged, not yet journaled: the merge runs again
                j["merged_rows"] = merged
                d["merged"] = True
                self.journal.save()
            kept = [kept_name for _live, _snap, kept_name in d["pairs"]]
            self._drop_snapshot_artifacts(d, snapshots=False)
        opts = d.get("options")
        if opts and opts.get("saved"):
            if opts["backup"] not in db.tables():
                raise RollbackError(f"the copy of the option rows ({opts['backup']}) is missing")
            db.with_lock_retries(
                lambda: db.restore_rows(opts["table"], opts["where"], opts["backup"]), retries
            )
        if mode != "snapshot":
            faults.point("restore:tables-renamed")  # the documented mid-restore kill point
        self._undo_migrations(d, db)
        return True, kept

    def _undo_migrations(self, d: dict[str, Any], db: Database) -> None:
        """Run down files (mode ``down``) and forget the records of undone files."""
        if not d.get("files") or MIGRATIONS_TABLE not in db.tables():
            return
        done = db.applied_migrations(self.cfg.plugin_name, self.site)
        snapped = {p[0] for p in d.get("pairs", [])}
        for f in reversed(d["files"]):
            recorded = done.get(f["name"]) == f["sha"]
            partial = not recorded and d.get("running") == f["name"] and not db.transactional_ddl
            if f.get("down") is not None and d["mode"] != "snapshot":
                if recorded or partial:
                    # A down interrupted by a crash runs again: on MySQL/MariaDB its first
                    # statements may already be done, so their errors are not fatal then.
                    again = d.get("down_running") == f["name"]
                    d["down_running"] = f["name"]
                    self.journal.save()
                    self._run_down(db, f, recorded, partial or again)
                    faults.point("restore:down-applied")
                continue
            keeps = f["class"] == EXPAND and not f["inserts_options"] and not (set(f["tables"]) & snapped)
            if recorded and not keeps:
                db.forget_migration(self.cfg.plugin_name, f["name"], self.site)

    def _run_down(self, db: Database, f: dict[str, Any], recorded: bool, partial: bool) -> None:
        from .policy import split_statements

        statements = split_statements(f["down"])
        name = f["name"]
        if db.transactional_ddl:

            def whole() -> None:
                with db.transaction():
                    for sql in statements:
                        db._run_script(sql)
                    db.forget_migration(self.cfg.plugin_name, name, self.site)

            db.with_lock_retries(whole, self.cfg.db_lock_retries)
            return
        for sql in statements:
            try:
                db.with_lock_retries(lambda sql=sql: db._run_script(sql), self.cfg.db_lock_retries)
            except Exception as exc:
                if not partial:
                    raise RollbackError(f"down migration {name} failed: {exc}") from exc
                # The up file stopped part-way: parts of its down have nothing to undo.
                log.warning("down migration %s (of a partly applied file): %s", name, exc)
        if recorded:
            db.forget_migration(self.cfg.plugin_name, name, self.site)

    def _after_rollback_db(self, j: dict[str, Any]) -> None:
        """After a complete rollback: drop the copy of the option rows."""
        d = j.get("db") or {}
        db = self.db()
        opts = d.get("options")
        if db is not None and opts and opts["backup"].startswith(self.snap_prefix()):
            db.drop_tables([opts["backup"]])


def is_mount_point(path: Path) -> bool:
    """True when ``path`` is a mount point, bind mounts of the same file system included
    (``os.path.ismount`` misses those: same device as the parent)."""
    if os.path.ismount(path):
        return True
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4:
                    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
                    if point == real:
                        return True
    except OSError:
        pass  # not Linux: ismount() is all there is
    return False


def _short(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 80 else text[:77] + "..."

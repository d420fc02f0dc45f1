"""Housekeeping: ``status`` and ``prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import backup as backups
from .base import AgentBase, _now, log
from .errors import (
    AgentError,
)
from .fsutil import (
    remove_tree,
)
from .journal import Journal


class HousekeepingMixin(AgentBase):
    """Report on and clean up what the agent keeps."""

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
        # Only this installation's kept tables, and only once their rows were merged back.
        dropped = [
            n
            for n, info in registry.items()
            if info.get("created_at", now) < cutoff
            and info.get("merged", True)
            and info.get("site", self.site) == self.site
        ]
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
                refs |= {pair[1] for pair in gdb.get("pairs", [])}
                if gdb.get("options"):
                    refs.add(gdb["options"]["backup"])
            # Another installation may share the database: its snapshots are not ours to drop.
            mine = self.snap_prefix()
            stale = [t for t in db.tables() if t.startswith(mine) and t not in refs]
            db.drop_tables(stale)
            removed += stale
        return removed

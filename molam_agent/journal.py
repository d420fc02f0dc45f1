"""The journal: what the agent is doing right now, durable at every step.

``<state_dir>/journal.json`` exists only while an operation (upgrade or rollback) is in
flight. It is rewritten atomically (temp file, fsync, rename, directory fsync) before each
step that changes the live plugin, so after a crash the next run knows exactly which steps
may have happened and can finish the commit or undo everything else.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from . import faults
from .fsutil import atomic_write_json, fsync_dir, read_json

# Steps of an upgrade, in order.
UPGRADE_STEPS = (
    "prepared",
    "backed_up",
    "downloaded",
    "staged",
    "snapshot_started",
    "snapshot_done",
    "maintenance_on",
    "swap_started",
    "swapped",
    "migrations_started",
    "migrations_done",
    "verified",
    "committed",
)
# Steps of a rollback (automatic after a failed upgrade, manual or operator-forced).
ROLLBACK_STEPS = (
    "rollback_prepared",
    "rollback_started",
    "files_restored",
    "db_restored",
    "rolled_back",
)
log = logging.getLogger(__name__)
# Up to "snapshot_done" checkout is not paused and no live row or file has changed (snapshot
# mode adds capture triggers and copies, which the abandon path removes).
LIVE_UNTOUCHED = {"prepared", "backed_up", "downloaded", "staged", "snapshot_started", "snapshot_done"}
# Steps during which files and schema may be out of step: the maintenance flag is pinned.
MIXED_STEPS = {"swap_started", "swapped", "migrations_started"}


class Journal:
    """A dict persisted to ``journal.json`` on every ``step()``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "journal.json"
        self.data: dict[str, Any] = {}

    def load(self) -> dict[str, Any] | None:
        """The journal of an interrupted operation, or None."""
        data = read_json(self.path)
        self.data = data or {}
        return data

    def begin(self, data: dict[str, Any], step: str) -> None:
        self.data = dict(data)
        self.step(step)

    def step(self, name: str, best_effort: bool = False, **updates: Any) -> None:
        """Record that ``name`` is about to happen (or just did), durably, then continue.

        ``best_effort`` is for rollback steps: a full disk must not stop a rollback, whose
        every operation re-checks the real state anyway, so a failed write is only logged.
        """
        self.data.update(updates)
        self.data["step"] = name
        self.data.setdefault("steps", []).append([name, round(time.time(), 3)])
        self.data["updated_at"] = time.time()
        try:
            atomic_write_json(self.path, self.data)
        except OSError as exc:
            if not best_effort:
                raise
            log.error("journal not updated (%s); continuing the rollback", exc)
        faults.point(name)

    def save(self, **updates: Any) -> None:
        """Persist extra facts without moving to another step."""
        self.data.update(updates)
        atomic_write_json(self.path, self.data)

    def clear(self) -> None:
        """The operation is over: forget it."""
        try:
            self.path.unlink()
            fsync_dir(self.path.parent)
        except FileNotFoundError:
            pass
        self.data = {}

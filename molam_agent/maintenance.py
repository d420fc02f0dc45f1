"""Maintenance mode: checkout paused while files and tables are swapped.

The flag is a JSON file next to the plugin directory, outside it so that the directory swap
does not carry it away::

    <plugins dir>/.molam-agent/<plugin dir name>/maintenance.json
    {"active": true, "until": 1736951400.0, "message": "...", "plugin": "...",
     "from_version": "3.9.0", "to_version": "4.0.0", "pid": 1234, "started_at": ...}

The plugin treats the flag as active only while ``time() < until``. The agent pushes
``until`` forward from a heartbeat thread every ``ttl/3`` seconds while it works, so a killed
agent stops renewing it and checkout resumes by itself at most ``ttl`` seconds later -- but
only while the live plugin is consistent. While files and schema may be out of step (between
the swap and the end of the migrations, during a rollback, after a failed rollback) the flag
is *pinned*: ``"pinned": true`` and ``until`` ten years ahead, so it does not expire; the
recovery (``molam-agent recover``, run by a one-minute timer while a journal exists) takes it
down. The heartbeat renews for at most ``max_pause_s`` seconds (the overall deadline); the
agent itself checks ``overdue()`` between steps and rolls back when the deadline passed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from .fsutil import atomic_write_json


def flag_path(plugin_dir: Path) -> Path:
    """Where the flag for the plugin installed in ``plugin_dir`` lives."""
    return work_dir(plugin_dir) / "maintenance.json"


def work_dir(plugin_dir: Path) -> Path:
    """The agent's directory beside the plugin: same file system, so renames are atomic.

    WordPress ignores entries of ``wp-content/plugins`` whose name starts with a dot.
    """
    plugin_dir = Path(plugin_dir)
    return plugin_dir.parent / ".molam-agent" / plugin_dir.name


def is_active(plugin_dir: Path, now: float | None = None) -> bool:
    """What the plugin computes before taking a payment."""
    try:
        flag = json.loads(flag_path(plugin_dir).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return bool(flag.get("active")) and (now or time.time()) < float(flag.get("until", 0))


class Maintenance:
    """Context-free handle: ``enter()`` pauses checkout, ``leave()`` resumes it."""

    PIN_S = 10 * 365 * 86400

    def __init__(
        self, plugin_dir: Path, ttl_s: int, message: str, plugin: str, max_pause_s: float = 600
    ) -> None:
        self.path = flag_path(plugin_dir)
        self.ttl_s = ttl_s
        self.max_pause_s = max_pause_s
        self.entered_at: float | None = None
        self.pause_ms: float | None = None
        self.message = message
        self.plugin = plugin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._doc: dict = {}
        # The heartbeat thread and the main thread both rewrite the flag.
        self._lock = threading.Lock()

    def enter(self, from_version: str, to_version: str) -> None:
        """Write the flag and start renewing it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.entered_at is None or not self._doc:
            self.entered_at = time.monotonic()
        pinned = bool(self._doc.get("pinned"))
        self._doc = {
            "active": True,
            "message": self.message,
            "plugin": self.plugin,
            "from_version": from_version,
            "to_version": to_version,
            "pid": os.getpid(),
            "started_at": time.time(),
            "pinned": pinned,
        }
        self._write()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name="maintenance", daemon=True)
            self._thread.start()

    def pin(self, pinned: bool = True) -> None:
        """Keep (or stop keeping) the flag up regardless of the heartbeat: live state is mixed."""
        if not self._doc:
            return
        self._doc["pinned"] = pinned
        self._write()

    def overdue(self) -> bool:
        """True once the pause has lasted longer than ``max_pause_s``."""
        return self.entered_at is not None and time.monotonic() - self.entered_at > self.max_pause_s

    def _write(self) -> None:
        with self._lock:
            ahead = self.PIN_S if self._doc.get("pinned") else self.ttl_s
            self._doc["until"] = time.time() + ahead
            # Readable by the web server user: the flag holds nothing secret.
            atomic_write_json(self.path, self._doc, mode=0o644)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if self.overdue() and not self._doc.get("pinned"):
                break  # the overall deadline: let the flag expire, the main thread rolls back
            try:
                self._write()
            except OSError:
                pass  # a full disk must not kill the agent mid-swap; the flag just expires

    def leave(self) -> None:
        """Resume checkout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            if self.entered_at is not None:
                self.pause_ms = round((time.monotonic() - self.entered_at) * 1000, 1)
            self.entered_at = None
            self._doc = {}

    def stop_heartbeat(self) -> None:
        """Stop renewing without touching the flag (a pinned flag then stays up)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

"""Maintenance mode: checkout paused while files and tables are swapped.

The flag is a JSON file next to the plugin directory, outside it so that the directory swap
does not carry it away::

    <plugins dir>/.molam-agent/<plugin dir name>/maintenance.json
    {"active": true, "until": 1736951400.0, "message": "...", "plugin": "...",
     "from_version": "3.9.0", "to_version": "4.0.0", "pid": 1234, "started_at": ...}

The plugin treats the flag as active only while ``time() < until``. The agent pushes
``until`` forward from a heartbeat thread every ``ttl/3`` seconds while it works, so a killed
agent stops renewing it and checkout resumes by itself at most ``ttl`` seconds later.
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

    def __init__(self, plugin_dir: Path, ttl_s: int, message: str, plugin: str) -> None:
        self.path = flag_path(plugin_dir)
        self.ttl_s = ttl_s
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
        self._doc = {
            "active": True,
            "message": self.message,
            "plugin": self.plugin,
            "from_version": from_version,
            "to_version": to_version,
            "pid": os.getpid(),
            "started_at": time.time(),
        }
        self._write()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name="maintenance", daemon=True)
            self._thread.start()

    def _write(self) -> None:
        with self._lock:
            self._doc["until"] = time.time() + self.ttl_s
            # Readable by the web server user: the flag holds nothing secret.
            atomic_write_json(self.path, self._doc, mode=0o644)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
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

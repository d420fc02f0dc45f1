"""Durable outbox for reports to the control plane.

Each report is one JSON file in ``<state_dir>/outbox/``, written atomically before anything
is sent, named ``<sequence>-<idempotency key>.json``. The sequence comes from a stored counter
(``outbox/seq``, advanced under ``outbox/.lock``), never from the clock: a clock stepped back
cannot reorder the queue. Reports are sent in sequence order, except that a report is never
sent before the report it depends on (``pending`` places dependencies first whatever their
numbers), so even files from older agents named after ``time_ns()`` drain. A report is deleted only after a 2xx answer; it is always sent with its
``Idempotency-Key`` header, so a report that reached the server just before a crash is
answered with the first result when sent again, and nothing is written twice.

A report may depend on the answer to an earlier one: ``rollback/{rollback_id}/complete``
needs the ``rollback_id`` that ``rollback/initiate`` returns. Answers are kept in
``outbox/results/<key>.json`` for that purpose. Reports the server refuses for good (4xx
other than 408/425/429) move to ``outbox/dead/`` with the answer, for an operator to read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from .api import ControlPlane
from .errors import ControlPlaneError
from .fsutil import atomic_write_bytes, atomic_write_json, fsync_dir, read_json

log = logging.getLogger(__name__)

_SEQ_NAME = re.compile(r"^(\d+)-")


def _seq_of(path: Path, entry: dict[str, Any] | None = None) -> int:
    """The sequence of a report: stored in the entry, else the number its file name starts with."""
    if entry and isinstance(entry.get("seq"), int):
        return entry["seq"]
    match = _SEQ_NAME.match(path.name)
    return int(match.group(1)) if match else 0


def _find(obj: Any, name: str) -> Any:
    """Look ``name`` up in a JSON answer, one level of nesting deep."""
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        for value in obj.values():
            if isinstance(value, dict) and name in value:
                return value[name]
    return None


class Outbox:
    """The queue of reports not yet acknowledged by the control plane."""

    def __init__(self, state_dir: Path, attempts: int = 3, base_delay_s: float = 0.25) -> None:
        self.dir = Path(state_dir) / "outbox"
        self.results = self.dir / "results"
        self.dead = self.dir / "dead"
        for path in (self.dir, self.results, self.dead):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.attempts = attempts
        self.base_delay_s = base_delay_s

    def enqueue(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        depends_on: str | None = None,
        key: str | None = None,
    ) -> str:
        """Store a report durably and return its idempotency key.

        ``path`` may contain ``{field}`` placeholders filled from the answer to the report
        ``depends_on`` names.
        """
        key = key or str(uuid.uuid4())
        entry = {
            "key": key,
            "method": method,
            "path": path,
            "body": body,
            "depends_on": depends_on,
            "created_at": time.time(),
            "attempts": 0,
        }
        with self._seq_lock():
            seq = self._next_seq()
            entry["seq"] = seq
            atomic_write_json(self.dir / f"{seq:020d}-{key}.json", entry)
        return key

    @contextlib.contextmanager
    def _seq_lock(self):
        # The state lock already serialises agent runs; this also covers a `status` run or a
        # second tool writing to the same outbox.
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _next_seq(self) -> int:
        """One more than every sequence ever handed out (the counter, or a file left behind)."""
        try:
            last = int((self.dir / "seq").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        for path in self.dir.glob("*.json"):
            last = max(last, _seq_of(path))
        seq = last + 1
        # Durable before the entry that uses it: a crash in between leaves a gap, never a reuse.
        atomic_write_bytes(self.dir / "seq", f"{seq}\n".encode())
        return seq

    def pending(self) -> list[dict[str, Any]]:
        """Reports not yet acknowledged, in sending order: by sequence, dependencies first."""
        entries = []
        for path in self.dir.glob("*.json"):
            entry = read_json(path)
            if entry:
                entry["_file"] = str(path)
                entry["_seq"] = _seq_of(path, entry)
                entries.append(entry)
        entries.sort(key=lambda e: (e["_seq"], e["_file"]))
        by_key = {e.get("key"): e for e in entries}
        ordered: list[dict[str, Any]] = []
        placed: set[str] = set()

        def place(entry: dict[str, Any], chain: frozenset[str]) -> None:
            key = entry.get("key")
            if key in placed:
                return
            dep = entry.get("depends_on")
            if dep in by_key and dep not in placed and dep not in chain:
                place(by_key[dep], chain | {key})
            placed.add(key)
            ordered.append(entry)

        for entry in entries:
            place(entry, frozenset())
        return ordered

    def result(self, key: str) -> Any:
        """The control plane's answer to the report ``key``, once it was acknowledged."""
        return read_json(self.results / f"{key}.json")

    def flush(self, client: ControlPlane) -> dict[str, int]:
        """Send what can be sent, retrying with exponential backoff within this run.

        Never raises: an unreachable control plane leaves the reports queued for the next run.
        """
        sent = failed = 0
        for attempt in range(self.attempts):
            blocked = False
            for entry in self.pending():
                outcome = self._send(client, entry)
                if outcome == "sent":
                    sent += 1
                elif outcome == "dead":
                    failed += 1
                elif outcome == "retry":
                    blocked = True
                    # Keep the order: a later report may depend on this one.
                    break
            if not blocked:
                break
            if attempt + 1 < self.attempts:
                time.sleep(self.base_delay_s * (2**attempt))
        return {"sent": sent, "dead": failed, "pending": len(self.pending())}

    def _send(self, client: ControlPlane, entry: dict[str, Any]) -> str:
        path = entry["path"]
        dep = entry.get("depends_on")
        if dep:
            answer = self.result(dep)
            if answer is None:
                if any(self.dir.glob(f"*-{dep}.json")):
                    return "retry"  # the report it depends on is still waiting
                # Refused for good, or never queued: this one can never be sent.
                self._bury(entry, {"error": f"depends on report {dep}, which was refused or lost"})
                return "dead"
            fields = {
                name: _find(answer, name)
                for name in ("rollback_id", "backup_id", "id")
                if _find(answer, name) is not None
            }
            try:
                path = path.format(**fields)
            except KeyError:
                self._bury(entry, {"error": f"answer to {dep} lacks a field for {path}"})
                return "dead"
        try:
            answer = client.request(entry["method"], path, body=entry["body"], idempotency_key=entry["key"])
        except ControlPlaneError as exc:
            if exc.status == 409 and path.endswith("/complete"):
                # Completed before (our first send reached the server, the answer did not
                # reach us): the rollback is recorded, which is all we wanted.
                answer = {"ok": True, "already_completed": True}
            elif exc.retryable:
                entry["attempts"] = int(entry.get("attempts", 0)) + 1
                entry["last_error"] = str(exc)
                self._rewrite(entry)
                return "retry"
            else:
                log.warning("control plane refused report %s: %s", entry["key"], exc)
                self._bury(entry, {"status": exc.status, "answer": exc.body, "error": str(exc)})
                return "dead"
        atomic_write_json(self.results / f"{entry['key']}.json", answer)
        self._remove(entry)
        return "sent"

    def _rewrite(self, entry: dict[str, Any]) -> None:
        path = Path(entry["_file"])
        atomic_write_json(path, {k: v for k, v in entry.items() if not k.startswith("_")})

    def _remove(self, entry: dict[str, Any]) -> None:
        path = Path(entry["_file"])
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    def _bury(self, entry: dict[str, Any], why: dict[str, Any]) -> None:
        path = Path(entry["_file"])
        record = {k: v for k, v in entry.items() if not k.startswith("_")}
        record["refused"] = why
        atomic_write_json(self.dead / path.name, record)
        self._remove(entry)

    def prune_results(self, max_age_s: float) -> int:
        """Forget answers older than ``max_age_s`` whose dependents are long gone."""
        removed = 0
        cutoff = time.time() - max_age_s
        waiting = {e.get("depends_on") for e in self.pending()}
        for path in self.results.glob("*.json"):
            if path.stem not in waiting and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def __len__(self) -> int:
        return len(list(self.dir.glob("*.json")))


def dumps(entry: dict[str, Any]) -> str:
    """A readable one-line form of a report, for ``status``."""
    return json.dumps({k: entry.get(k) for k in ("method", "path", "key", "attempts")})

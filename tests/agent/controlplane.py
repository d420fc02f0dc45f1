"""A real HTTP peer speaking the control plane's JSON shapes (``/api/plugins/``).

Used where the Django control plane is not needed: it records every request, honours
``Idempotency-Key`` like the real server, answers 409 to a second rollback completion,
and can be told to fail (HTTP 503) or be stopped to look unreachable.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit


class ControlPlaneState:
    """What the fake control plane knows and what it received."""

    def __init__(self, files_dir: Path) -> None:
        self.files_dir = files_dir
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.decision: dict[str, Any] = {
            "should_upgrade": False,
            "reason": "No active rollout",
            "release": None,
        }
        self.pending: list[dict[str, Any]] = []
        self.releases: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.fail_writes: int | None = None
        self.lose_answers = 0
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.rollbacks: dict[str, dict[str, Any]] = {}
        self.backups: dict[str, dict[str, Any]] = {}
        self.upgrade_logs: list[dict[str, Any]] = []
        self.writes = 0

    def posts(self, path_suffix: str) -> list[dict[str, Any]]:
        """Bodies received on paths ending with ``path_suffix`` (writes only)."""
        return [r["body"] for r in self.requests if r["method"] != "GET" and r["path"].endswith(path_suffix)]


class Handler(BaseHTTPRequestHandler):
    state: ControlPlaneState

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: Any, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self, method: str) -> None:
        st = self.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        if parts.path.startswith("/files/"):
            path = st.files_dir / parts.path[len("/files/") :]
            if not path.is_file():
                return self._send(404, {"ok": False, "error": "no such file"})
            return self._send(200, None, raw=path.read_bytes())
        if not parts.path.startswith("/api/plugins/"):
            return self._send(404, {"ok": False, "error": "not found"})
        route = parts.path[len("/api/plugins/") :]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with st.lock:
            st.requests.append(
                {
                    "method": method,
                    "path": route,
                    "query": query,
                    "body": body,
                    "key": self.headers.get("Idempotency-Key"),
                    "auth": self.headers.get("Authorization"),
                }
            )
            if st.fail_status or (st.fail_writes and method != "GET"):
                status = st.fail_status or st.fail_writes
                return self._send(status, {"ok": False, "error": "unavailable"})
            key = self.headers.get("Idempotency-Key")
            if method != "GET" and key and key in st.idempotent:
                status, payload = st.idempotent[key]
                return self._send(status, payload)
            status, payload = self._route(method, route, query, body or {})
            if method != "GET" and key and status < 300:
                st.idempotent[key] = (status, payload)
            if method != "GET" and st.lose_answers > 0:
                # The write happened; the answer is lost on the way back (connection reset).
                st.lose_answers -= 1
                self.close_connection = True
                self.wfile.flush()
                return None
        return self._send(status, payload)

    def _route(self, method: str, route: str, query: dict, body: dict) -> tuple[int, dict]:
        st = self.state
        if method == "GET" and route.endswith("/should-upgrade"):
            return 200, dict(st.decision)
        if method == "GET" and route == "rollback/pending":
            return 200, {
                "rollbacks": [
                    p
                    for p in st.pending
                    if p["rollback_id"] not in st.rollbacks
                    or not st.rollbacks[p["rollback_id"]].get("completed")
                ]
            }
        if method == "GET" and route == "releases":
            return 200, {"releases": st.releases}
        if method == "POST" and route == "upgrades":
            st.writes += 1
            log = dict(body, id=str(uuid.uuid4()))
            st.upgrade_logs.append(log)
            return 201, {"ok": True, "upgrade_log": log}
        if method == "POST" and route == "rollback":
            st.writes += 1
            return 200, {
                "ok": True,
                "upgrade_log": {
                    "id": str(uuid.uuid4()),
                    "rollback_status": body.get("status"),
                    "rollback_version": body.get("rollback_version"),
                },
            }
        if method == "POST" and route == "rollback/initiate":
            st.writes += 1
            rid = str(uuid.uuid4())
            st.rollbacks[rid] = dict(body, rollback_id=rid)
            return 201, {"ok": True, "rollback_id": rid}
        if method == "POST" and route.startswith("rollback/") and route.endswith("/complete"):
            rid = route.split("/")[1]
            if rid not in st.rollbacks and not any(p["rollback_id"] == rid for p in st.pending):
                return 404, {"ok": False, "error": "no such rollback"}
            rec = st.rollbacks.setdefault(rid, {"rollback_id": rid})
            if rec.get("completed"):
                return 409, {"ok": False, "error": "rollback already completed"}
            st.writes += 1
            rec.update(body, completed=True)
            return 200, {"ok": True, "rollback": rec}
        if method == "POST" and route == "backup":
            st.writes += 1
            bid = str(uuid.uuid4())
            st.backups[bid] = dict(body, backup_id=bid, backup_status=body.get("backup_status") or "pending")
            return 201, {"ok": True, "backup": st.backups[bid]}
        if method == "PATCH" and route.startswith("backup/"):
            bid = route.split("/")[1]
            if bid not in st.backups:
                return 404, {"ok": False, "error": "no such backup"}
            st.writes += 1
            st.backups[bid].update(body)
            return 200, {"ok": True, "backup": st.backups[bid]}
        return 404, {"ok": False, "error": f"no route {method} {route}"}

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")


class FakeControlPlane:
    """Runs ``Handler`` on a loopback port in a thread."""

    def __init__(self, files_dir: Path, port: int = 0, state: ControlPlaneState | None = None) -> None:
        self.state = state or ControlPlaneState(files_dir)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/plugins/"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A small client for the control plane's REST API (``/api/plugins/``), on urllib only.

Requests go through ``transport.urlopen``: https except for loopback hosts, and the bearer
token is never carried across a redirect to another origin.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from . import __version__, transport
from .errors import ControlPlaneError

USER_AGENT = f"molam-agent/{__version__}"


class ControlPlane:
    """Talks JSON to the control plane with a bearer token."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self.base_url = transport.require_secure_url(
            base_url if base_url.endswith("/") else base_url + "/", "control_plane.url"
        )
        self.token = token
        self.timeout_s = timeout_s

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """Absolute URL of an API path such as ``rollback/pending``."""
        url = urllib.parse.urljoin(self.base_url, path.lstrip("/"))
        if query:
            clean = {k: v for k, v in query.items() if v is not None}
            url += "?" + urllib.parse.urlencode(clean)
        return url

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer.

        Raises ``ControlPlaneError`` with ``status=None`` for network failures (refused,
        timeout, DNS) and with the HTTP status for error answers.
        """
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        req = urllib.request.Request(self.url(path, query), data=data, method=method, headers=headers)
        try:
            with transport.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            payload = _decode(exc.read())
            message = payload.get("error") if isinstance(payload, dict) else None
            raise ControlPlaneError(
                f"{method} {path}: HTTP {exc.code}" + (f": {message}" if message else ""),
                status=exc.code,
                body=payload,
            ) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ControlPlaneError(f"{method} {path}: control plane unreachable ({reason})") from None
        payload = _decode(raw)
        if not isinstance(payload, dict):
            raise ControlPlaneError(f"{method} {path}: answer is not a JSON object", status=502)
        return payload

    # Typed helpers for the endpoints the agent reads synchronously. Reports go through the
    # outbox instead (see outbox.py), so that a reporting failure never blocks a rollback.

    def should_upgrade(
        self, plugin: str, merchant_id: str, current_version: str, country: str | None, tier: str | None
    ) -> dict[str, Any]:
        """``GET rollouts/<plugin>/should-upgrade``."""
        return self.request(
            "GET",
            f"rollouts/{urllib.parse.quote(plugin)}/should-upgrade",
            query={
                "merchant_id": merchant_id,
                "current_version": current_version,
                "country": country,
                "tier": tier,
            },
        )

    def pending_rollbacks(self, plugin: str, merchant_id: str) -> list[dict[str, Any]]:
        """``GET rollback/pending``: operator-forced rollbacks waiting for this host."""
        answer = self.request(
            "GET", "rollback/pending", query={"merchant_id": merchant_id, "plugin_name": plugin}
        )
        rollbacks = answer.get("rollbacks", [])
        return rollbacks if isinstance(rollbacks, list) else []

    def releases(self, plugin: str) -> list[dict[str, Any]]:
        """``GET releases?plugin_name``."""
        answer = self.request("GET", "releases", query={"plugin_name": plugin})
        for key in ("releases", "results"):
            if isinstance(answer.get(key), list):
                return answer[key]
        return []


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode() or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"error": raw[:200].decode("utf-8", "replace")}

"""The smoke test: does checkout work with the plugin as installed right now?"""

from __future__ import annotations

import os
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .errors import SmokeTestError


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect (to a login or error page) is not a healthy answer: do not follow it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def run_smoke_test(
    command: str | None, url: str | None, plugin_dir: Path, version: str, timeout_s: float
) -> str:
    """Run the configured check; return a one-line description or raise ``SmokeTestError``.

    Command: run without a shell, with ``MOLAM_PLUGIN_DIR`` and ``MOLAM_VERSION`` in its
    environment; exit status 0 is healthy. URL: healthy only on a 2xx answer; a refused
    connection, a timeout, a 3xx, 403 or any other status is a failure. Neither configured:
    nothing to check, healthy.
    """
    if command:
        env = dict(os.environ, MOLAM_PLUGIN_DIR=str(plugin_dir), MOLAM_VERSION=version)
        try:
            proc = subprocess.run(
                shlex.split(command),
                env=env,
                cwd=str(plugin_dir),
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SmokeTestError(f"smoke test command timed out after {timeout_s:g}s") from exc
        except OSError as exc:
            raise SmokeTestError(f"smoke test command could not start: {exc}") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-300:]
            raise SmokeTestError(f"smoke test command exited with status {proc.returncode}: {tail}")
        if not url:
            return "smoke test command exited 0"
    if url:
        opener = urllib.request.build_opener(_NoRedirect)
        req = urllib.request.Request(url, headers={"User-Agent": "molam-agent smoke test"})
        try:
            with opener.open(req, timeout=timeout_s) as resp:
                resp.read(65536)
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise SmokeTestError(f"smoke test URL answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SmokeTestError(f"smoke test URL unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise SmokeTestError(f"smoke test URL answered HTTP {status}")
        return f"smoke test URL answered HTTP {status}"
    return "no smoke test configured"

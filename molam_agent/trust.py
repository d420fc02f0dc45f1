"""What the agent accepts from the control plane without a signature: forced rollbacks.

A release is signed (``release.verify_release``); an operator-forced rollback from
``GET rollback/pending`` is not, so a compromised or replayed answer could otherwise force a
downgrade to any version kept on the host. It is honoured only when it describes this host's
present: its ``from_version`` is the version installed right now, and it was created less than
``release.forced_rollback_max_age_s`` ago (24 h by default). Anything else is refused and
completed as failed with the reason, so the operator sees why.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from .errors import VerificationError
from .versions import Version

log = logging.getLogger("molam_agent")


def _parse_time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    text = text.strip()
    if text.endswith(("Z", "z")):  # fromisoformat accepts "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when


def _same_version(a: Any, b: str) -> bool:
    try:
        return Version(str(a)) == Version(b)
    except VerificationError:
        return False


def forced_rollback_refusal(
    item: dict[str, Any], installed: str, max_age_s: int, now: dt.datetime | None = None
) -> str | None:
    """Why the forced rollback ``item`` must not run on a host at ``installed``; None if it may.

    A rollback whose ``to_version`` is already installed is not refused: performing it
    changes nothing (it only completes the operator's record).
    """
    to_v = item.get("to_version")
    if to_v and _same_version(to_v, installed):
        return None
    from_v = item.get("from_version")
    if not from_v or not _same_version(from_v, installed):
        return (
            f"forced rollback refused: it was issued for version {from_v or '(none)'} "
            f"but {installed} is installed"
        )
    created = _parse_time(item.get("created_at"))
    if created is None:
        return "forced rollback refused: it carries no valid created_at time"
    now = now or dt.datetime.now(dt.timezone.utc)
    age = (now - created).total_seconds()
    if age > max_age_s:
        return (
            f"forced rollback refused: it was issued {age / 3600:.1f} h ago, older than "
            f"release.forced_rollback_max_age_s ({max_age_s} s)"
        )
    return None


def report_refused_forced_rollback(agent: Any, item: dict[str, Any], reason: str) -> None:
    """Complete a refused forced rollback as failed, with ``reason`` for the operator.

    Nothing on the host changes; the run then carries on as if no rollback were pending.
    """
    rid = item["rollback_id"]
    log.warning("operator-forced rollback %s to %s: %s", rid, item.get("to_version"), reason)
    agent._report(
        f"rollback/{rid}/complete",
        {
            "success": False,
            "duration_ms": 0,
            "files_restored": 0,
            "db_restored": False,
            "error_message": reason,
        },
        key=f"forced-{rid}-refused",
    )
    agent._flush()

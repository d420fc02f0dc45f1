"""Fault-injection points used by the crash-safety test suite.

``MOLAM_AGENT_FAULT=<point>`` makes the agent kill itself with SIGKILL when it reaches
``<point>`` (a journal step name such as ``swapped``, or one of the extra points listed in
``docs/agent.md``). ``MOLAM_AGENT_FAULT=enospc:<point>`` raises ``OSError(ENOSPC)`` there
instead, which simulates a full disk where a real one cannot be arranged. Several points
may be given, separated by commas. Unset in production, every call is a cheap no-op.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "MOLAM_AGENT_FAULT"


def _points() -> list[str]:
    raw = os.environ.get(ENV, "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def point(name: str) -> None:
    """Die or fail here if the environment asks for it."""
    for spec in _points():
        if spec == name:
            # SIGKILL, not an exception: nothing of ours (finally blocks, atexit) may run,
            # exactly like a power cut or the OOM killer.
            os.kill(os.getpid(), signal.SIGKILL)
        if spec == f"enospc:{name}":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)

"""Template tags that put plans next to the rollout-control page's own cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template

from ..progress import Progress, progress_for

register = template.Library()


@dataclass
class LiveControl:
    """What the live fragment of /ops/rollout-control needs beyond the page's context."""

    rows: list[tuple[Any, Progress | None]]
    mode: str
    since: str
    poll_seconds: int


@register.simple_tag(takes_context=True)
def live_control(context, cards) -> LiveControl:
    """Each card with its plan's progress (one query for all), the view mode and the version."""
    from ..views import POLL_SECONDS, control_view_mode

    request = context.get("request")
    progress = progress_for([card.rollout for card in cards])
    return LiveControl(
        rows=[(card, progress.get(card.rollout.pk)) for card in cards],
        mode=control_view_mode(request, len(cards)) if request is not None else "cards",
        # The page itself sends no version (one query less): its first poll answers in full.
        since=context.get("live_since") or "",
        poll_seconds=POLL_SECONDS,
    )


@register.filter
def gate_text(row, rollout) -> str:
    """``{{ row|gate_text:rollout }}``: the stage's gate in words, with the threshold it uses."""
    return row.gate_text(rollout)

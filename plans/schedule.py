"""Allowed upgrade windows: days and hours in a named time zone (``zoneinfo``).

A window is ``{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}`` in the plan's time
zone. An ``end`` at or before ``start`` runs past midnight into the next day (``22:00``–``06:00``
is a night; ``00:00``–``00:00`` is the whole day); ``days`` are the days a window *starts*.
Local wall-clock times are used, so a window follows daylight-saving changes.

Pure Python and picklable: a :class:`Schedule` travels inside the cached decision data of a
rollout and is checked on the should-upgrade hot path without touching the database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .choices import DAY_NAMES

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_WINDOWS = 21


class ScheduleError(ValueError):
    """A time zone or window a person wrote that cannot be used (the message says why)."""


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Africa/Dakar``); ScheduleError when unknown."""
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name or name.startswith("/"):
        raise ScheduleError(f"Unknown time zone {str(name)[:64]!r}: use an IANA name such as Africa/Dakar.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"Unknown time zone {name!r}: use an IANA name such as Africa/Dakar.") from exc


def _parse_time(value, what: str) -> time:
    if value == "24:00":
        return time(0, 0)
    match = _HHMM.match(value) if isinstance(value, str) else None
    if not match:
        raise ScheduleError(f"Window {what} must be a time HH:MM such as 22:00; got {str(value)[:16]!r}.")
    return time(int(match[1]), int(match[2]))


def normalize_windows(data) -> list[dict]:
    """Validate windows written by a person and return them in stored form (ScheduleError)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ScheduleError("Windows must be a list of {days, start, end} objects.")
    if len(data) > MAX_WINDOWS:
        raise ScheduleError(f"At most {MAX_WINDOWS} windows.")
    out = []
    for item in data:
        if not isinstance(item, dict) or set(item) - {"days", "start", "end"}:
            raise ScheduleError("Each window is an object with days, start and end, and nothing else.")
        days = item.get("days")
        if not isinstance(days, list) or not days or not all(isinstance(d, str) for d in days):
            raise ScheduleError(f"Window days must be a non-empty list of {', '.join(DAY_NAMES)}.")
        lowered = [d.lower()[:3] for d in days]
        unknown = [d for d, low in zip(days, lowered, strict=True) if low not in DAY_NAMES]
        if unknown:
            raise ScheduleError(f"Unknown day {unknown[0][:16]!r}: use {', '.join(DAY_NAMES)}.")
        start = _parse_time(item.get("start"), "start")
        end = _parse_time(item.get("end"), "end")
        out.append(
            {
                "days": [d for d in DAY_NAMES if d in lowered],
                "start": start.strftime("%H:%M"),
                "end": end.strftime("%H:%M"),
            }
        )
    return out


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: time
    end: time  # at or before start: the window ends the next day

    def describe(self) -> str:
        names = [DAY_NAMES[d] for d in sorted(self.days)]
        days = "every day" if len(names) == 7 else ", ".join(n.capitalize() for n in names)
        return f"{days} {self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class Schedule:
    """A rollout's allowed windows; no windows means always open."""

    timezone: str
    windows: tuple[Window, ...]

    @classmethod
    def from_stored(cls, timezone: str, windows: list[dict]) -> Schedule:
        zone(timezone)  # fail early on a bad name
        return cls(
            timezone=timezone,
            windows=tuple(
                Window(
                    days=frozenset(DAY_NAMES.index(d) for d in w["days"]),
                    start=_parse_time(w["start"], "start"),
                    end=_parse_time(w["end"], "end"),
                )
                for w in windows
            ),
        )

    def _openings(self, now: datetime, first_day: int, last_day: int) -> Iterator[tuple[datetime, datetime]]:
        tz = zone(self.timezone)
        today = now.astimezone(tz).date()
        for offset in range(first_day, last_day + 1):
            day = today + timedelta(days=offset)
            for window in self.windows:
                if day.weekday() not in window.days:
                    continue
                start = datetime.combine(day, window.start, tz)
                end_day = day if window.end > window.start else day + timedelta(days=1)
                yield start, datetime.combine(end_day, window.end, tz)

    def is_open(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls in a window; always true without windows."""
        if not self.windows:
            return True
        # A window that opened yesterday may still run (nights); aware datetimes compare in UTC.
        return any(start <= now < end for start, end in self._openings(now, -1, 0))

    def next_opening(self, now: datetime) -> datetime | None:
        starts = [start for start, _ in self._openings(now, 0, 8) if start > now]
        return min(starts) if starts else None

    def describe(self) -> str:
        if not self.windows:
            return "any time"
        return "; ".join(w.describe() for w in self.windows) + f" ({self.timezone})"

    def closed_answer(self, now: datetime) -> tuple[str, int] | None:
        """None inside a window; else the reason to give an agent and the seconds to wait."""
        if self.is_open(now):
            return None
        opening = self.next_opening(now)
        if opening is None:  # unreachable with valid windows; wait a day rather than hammer
            return f"Outside this rollout's upgrade windows: {self.describe()}", 86400
        wait = max(1, math.ceil((opening - now).total_seconds()))
        local = opening.astimezone(zone(self.timezone))
        return (
            f"Outside this rollout's upgrade windows ({self.describe()}); "
            f"the next one opens {local:%a %Y-%m-%d %H:%M} {self.timezone}",
            wait,
        )

"""Windows in a named time zone: open, closed, the next opening, across midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plans.schedule import Schedule, ScheduleError, normalize_windows

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def schedule(tz: str, *windows) -> Schedule:
    return Schedule.from_stored(tz, normalize_windows(list(windows)))


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_night_window_in_dakar_spans_midnight():
    nights = schedule("Africa/Dakar", {"days": EVERY_DAY, "start": "22:00", "end": "06:00"})
    assert nights.is_open(at(2026, 11, 30, 23, 30))
    assert nights.is_open(at(2026, 12, 1, 5, 59))
    assert not nights.is_open(at(2026, 12, 1, 6, 0))
    reason, retry_after = nights.closed_answer(at(2026, 12, 1, 12, 0))
    assert retry_after == 10 * 3600
    assert "22:00 Africa/Dakar" in reason and "Outside" in reason
    assert nights.closed_answer(at(2026, 12, 1, 22, 0)) is None


def test_days_are_the_days_a_window_starts_in_local_time():
    # Saturday night only, in Paris (UTC+1 in winter): 23:00–02:00 local.
    saturday = schedule("Europe/Paris", {"days": ["sat"], "start": "23:00", "end": "02:00"})
    assert saturday.is_open(at(2026, 12, 5, 22, 30))  # Sat 23:30 Paris
    assert saturday.is_open(at(2026, 12, 6, 0, 30))  # Sun 01:30 Paris, still Saturday's night
    assert not saturday.is_open(at(2026, 12, 6, 22, 30))  # Sunday night is not in the window
    _, wait = saturday.closed_answer(at(2026, 12, 6, 22, 0))
    assert wait == (6 * 24 + 0) * 3600  # from Sun 23:00 to the next Sat 23:00 Paris


def test_windows_follow_daylight_saving_time():
    mornings = schedule("Europe/Paris", {"days": EVERY_DAY, "start": "03:00", "end": "05:00"})
    assert mornings.is_open(at(2026, 1, 15, 2, 30))  # winter: 03:30 Paris is 02:30 UTC
    assert mornings.is_open(at(2026, 7, 15, 1, 30))  # summer: 03:30 Paris is 01:30 UTC
    assert not mornings.is_open(at(2026, 7, 15, 3, 30))


def test_no_windows_is_always_open_and_a_whole_day_window_works():
    assert Schedule.from_stored("UTC", []).closed_answer(at(2026, 1, 1, 0, 0)) is None
    weekends = schedule("UTC", {"days": ["sat", "sun"], "start": "00:00", "end": "24:00"})
    assert weekends.is_open(at(2026, 12, 6, 23, 59))
    assert not weekends.is_open(at(2026, 12, 7, 0, 0))


@pytest.mark.parametrize(
    "windows, message",
    [
        ("nights", "list"),
        ([{"days": [], "start": "22:00", "end": "06:00"}], "non-empty"),
        ([{"days": ["someday"], "start": "22:00", "end": "06:00"}], "Unknown day"),
        ([{"days": ["mon"], "start": "22h", "end": "06:00"}], "HH:MM"),
        ([{"days": ["mon"], "start": "22:00", "end": "06:00", "tz": "UTC"}], "nothing else"),
    ],
)
def test_bad_windows_are_refused(windows, message):
    with pytest.raises(ScheduleError, match=message):
        normalize_windows(windows)


def test_an_unknown_time_zone_is_refused():
    for name in ("Mars/Olympus", "../../etc/passwd", ""):
        with pytest.raises(ScheduleError, match="time zone"):
            Schedule.from_stored(name, [])

"""Log plumbing: a request id on every line, and JSON lines when ``LOG_FORMAT=json``."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request).

    Django logs a 4xx/5xx response (``django.request``) after the middleware chain returned,
    when the context variable is already reset; that record carries the request, so the id is
    taken from it instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            request_id = getattr(getattr(record, "request", None), "request_id", "-")
        record.request_id = request_id
        if request_id == "-":
            _add_task(record)
        return True


def _add_task(record: logging.LogRecord) -> None:
    """Inside a Celery task, tag the line with the task's id and name (what a request id is to a view)."""
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - Celery is a dependency of the control plane
        return
    task_id = getattr(getattr(current_task, "request", None), "id", None) if current_task else None
    if task_id and not hasattr(record, "task_id"):
        record.task_id = task_id
        record.task_name = current_task.name


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "request_id",
    # Set by a text formatter that saw the record first; not a field of the event.
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        request = payload.pop("request", None)
        if request is not None and hasattr(request, "method"):
            # django.request passes the HttpRequest itself: keep what a log search needs.
            payload.setdefault("method", request.method)
            payload.setdefault("path", request.path)
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)

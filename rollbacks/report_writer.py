"""Group commit for upgrade reports: the reports a web process receives at the same moment are
written by one statement (``aggregates.store_batch``), on PostgreSQL.

Each request thread hands its report to this process's writer and waits until the statement that
holds it has committed; only then does it answer 201, so a report is visible to Sira and the API
exactly when it was before. The writer takes whatever is queued when it becomes free (no added
wait: alone, a report is written at once), so under load many reports share one statement and
one commit. The database's cost per report falls several-fold (its per-statement and per-commit
work is most of a lone report's cost), and request threads make no database round trip of their
own. PostgreSQL's ``commit_delay`` groups only the WAL flushes of separate transactions; no
library groups the statements of an application's requests, hence this module.

- **Order and conflicts.** A statement holds a merchant and an Idempotency-Key at most once (one
  upsert may touch a row once): a second report of the same merchant, or a second use of a key,
  goes to the next statement, in arrival order.
- **Failure.** If a statement fails, each of its reports is retried alone; the error of one
  report reaches only its own request.
- **Bounded wait.** A request waits at most ``REPORT_WRITE_TIMEOUT_S`` (503, "retry with the
  same Idempotency-Key": the replay then returns the report if it was written after all).
- **Where it is not used.** Inside a transaction (the caller's rows must be visible to the
  statement, and it must roll back with them), on other databases, and with
  ``REPORT_GROUP_COMMIT=0``: the caller then writes its report itself.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from prometheus_client import Counter, Histogram

from molam_upgrades.exceptions import ServiceUnavailable
from molam_upgrades.request_metrics import PROCESS_REGISTRY

from . import aggregates
from .models import UpgradeLog

logger = logging.getLogger("molam.rollbacks")

MAX_BATCH = 32  # reports per statement
IDLE_CLOSE_S = 30.0  # the writer's connection is closed after this long without a report

_Item = tuple[UpgradeLog, "dict | None", Future]


class _Metrics(NamedTuple):
    reports_per_statement: Histogram
    statement_seconds: Histogram
    failed_groups: Counter


@functools.cache
def metrics() -> _Metrics:
    """The writer's series on /metrics, summed over the web workers: how well reports share
    statements (``_count`` is the statements written, ``_sum`` the reports in them), what a
    statement costs, and groups that failed and were written report by report.

    Created with the first statement, not at import: in multiprocess mode a metric without labels
    opens its file in ``PROMETHEUS_MULTIPROC_DIR`` at once, and the processes that only import
    this module (``manage.py`` commands, the Celery worker) may have that variable and no folder.
    """
    return _Metrics(
        Histogram(
            "molam_report_writer_reports_per_statement",
            "Upgrade reports written by one group-commit statement (_count: statements, _sum: reports).",
            buckets=(1, 2, 4, 8, 16, MAX_BATCH),
            registry=PROCESS_REGISTRY,
        ),
        Histogram(
            "molam_report_writer_statement_duration_seconds",
            "Time to write and commit one group-commit statement of upgrade reports, in seconds.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=PROCESS_REGISTRY,
        ),
        Counter(
            "molam_report_writer_failed_groups",
            "Group-commit statements that failed and were retried one report at a time.",
            registry=PROCESS_REGISTRY,
        ),
    )


def enabled() -> bool:
    return (
        connection.vendor == "postgresql" and not connection.in_atomic_block and settings.REPORT_GROUP_COMMIT
    )


def store(report: UpgradeLog, key_record: dict | None) -> bool:
    """Write ``report`` (claiming ``key_record``) with the reports that arrive with it; False when
    its key was already recorded. Waits for the commit, at most ``REPORT_WRITE_TIMEOUT_S``."""
    future: Future = Future()
    _writer().put((report, key_record, future))
    try:
        return future.result(timeout=settings.REPORT_WRITE_TIMEOUT_S)
    except FutureTimeout:
        raise ServiceUnavailable(
            "The report could not be confirmed in time; send it again with the same Idempotency-Key."
        ) from None


def split(items: list[_Item]) -> list[list[_Item]]:
    """Statements for ``items``, in arrival order: no merchant and no key twice in one."""
    statements: list[tuple[set, list[_Item]]] = []
    for item in items:
        report, key_record = item[0], item[1]
        marks = {("merchant", report.merchant_id)}
        if key_record is not None:
            marks.add(("key", key_record["principal"], key_record["key"]))
        # After the last statement that holds one of these marks, to keep their order.
        start = 0
        for i, (taken, _) in enumerate(statements):
            if taken & marks:
                start = i + 1
        for taken, members in statements[start:]:
            if not taken & marks:
                taken |= marks
                members.append(item)
                break
        else:
            statements.append((marks, [item]))
    return [members for _, members in statements]


class _Writer:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="report-writer", daemon=True)
        self.thread.start()

    def put(self, item: _Item) -> None:
        self.queue.put(item)

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while True:
                try:
                    first = self.queue.get(timeout=IDLE_CLOSE_S)
                except queue.Empty:
                    connection.close()  # idle: give the connection back
                    continue
                if first is None:
                    return
                items = [first]
                while len(items) < MAX_BATCH:
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._write(items)
                        return
                    items.append(item)
                self._write(items)
        finally:
            connection.close()

    def _write(self, items: list[_Item]) -> None:
        for statement in split(items):
            write_statement(statement)


def write_statement(items: list[_Item]) -> None:
    """Write ``items`` in one statement and settle each one's future (its result or its error)."""
    # As at the start of a request: drop a connection that broke or outlived CONN_MAX_AGE (the
    # next query then checks it with CONN_HEALTH_CHECKS).
    connection.close_if_unusable_or_obsolete()
    measure = metrics()
    started = time.perf_counter()
    try:
        stored = aggregates.store_batch(
            [(report, key_record) for report, key_record, _ in items], prepared=True
        )
    except Exception as error:  # noqa: BLE001 - it goes to the request(s) that sent the report(s)
        if len(items) > 1:  # each report alone, so one cannot fail the others
            logger.warning("a group of %d reports failed; writing each alone", len(items), exc_info=True)
            measure.failed_groups.inc()
            for item in items:
                write_statement([item])
            return
        items[0][2].set_exception(error)  # a broken connection is replaced before the next one
        return
    measure.statement_seconds.observe(time.perf_counter() - started)
    measure.reports_per_statement.observe(len(items))
    for (_, _, future), claimed in zip(items, stored, strict=True):
        future.set_result(claimed)


_lock = threading.Lock()
_instance: _Writer | None = None


def _writer() -> _Writer:
    global _instance
    writer = _instance
    if writer is None or writer.pid != os.getpid() or not writer.thread.is_alive():
        with _lock:
            writer = _instance
            if writer is None or writer.pid != os.getpid() or not writer.thread.is_alive():
                writer = _instance = _Writer()
    return writer


def stop() -> None:
    """Stop this process's writer and close its connection (tests, before the database goes)."""
    global _instance
    with _lock:
        writer, _instance = _instance, None
    if writer is not None and writer.pid == os.getpid():
        writer.stop()

"""Helpers shared by the monitoring tests: scrape parsing, a PagerDuty stand-in, thread races."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.db import connections
from prometheus_client.parser import text_string_to_metric_families


def parse_scrape(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of a text-format scrape."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def parse_scrape_openmetrics(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels): value} of an OpenMetrics scrape."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse

    samples = {}
    for family in parse(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]


class Receiver:
    """A PagerDuty Events API stand-in: records payloads, answers with the given statuses."""

    def __init__(self, statuses=(), delay: float = 0.0):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length))
                time.sleep(delay)
                with receiver.lock:
                    receiver.received.append(payload)
                    status = receiver.statuses.pop(0) if receiver.statuses else 202
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_in_threads(*targets, timeout: float = 60) -> tuple[list, list[BaseException]]:
    """Start the targets together (barrier) in their own DB connections; (results, errors)."""
    barrier = threading.Barrier(len(targets))
    results: list = [None] * len(targets)
    errors: list[BaseException] = []

    def wrap(index, fn):
        def run():
            try:
                barrier.wait()
                results[index] = fn()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted by the test
                errors.append(exc)
            finally:
                connections.close_all()

        return run

    threads = [threading.Thread(target=wrap(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results, errors

"""The compose stack's pieces running together (tests/deploy/stack.py): TLS, redirects, the
proxy header, healthchecks, graceful shutdown and request metrics across granian workers."""

from __future__ import annotations

import re
import signal
import threading
import time

import psycopg
import pytest
import requests

from .stack import METRICS_TOKEN, ROOT, free_port

pytestmark = pytest.mark.slow


# Requests sent straight to granian play the part of Caddy on the internal network, which
# always says the client came over HTTPS.
AS_CADDY = {"X-Forwarded-Proto": "https", "Connection": "close"}


def ops_token(stack) -> str:
    result = stack.run(
        "python", "manage.py", "create_api_client", f"ops-{time.monotonic_ns()}", "--role", "ops_plugins"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_migrate_ran_once_before_the_services_and_left_nothing_to_do(stack):
    assert "Applying" in stack.migrate_output
    again = stack.run("python", "manage.py", "migrate", "--check", "--noinput")
    assert again.returncode == 0, again.stdout + again.stderr


def test_https_works_with_caddys_internal_ca(stack):
    response = stack.session().get(f"{stack.https}/login/", timeout=10)
    assert response.status_code == 200
    assert "Sign in" in response.text
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # Secure cookies: the app knows it is behind HTTPS.
    assert "secure" in response.headers["Set-Cookie"].lower()


def test_static_files_are_served_hashed_and_compressed(stack):
    page = stack.session().get(f"{stack.https}/login/", timeout=10).text
    css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page)
    assert css, "the stylesheet is not served under its hashed (manifest) name"
    response = stack.session().get(
        f"{stack.https}{css.group(1)}", headers={"Accept-Encoding": "gzip"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers.get("Content-Encoding") in {"gzip", "zstd", "br"}
    assert "immutable" in response.headers["Cache-Control"]


def test_plain_http_is_redirected_to_https(stack):
    response = requests.get(f"{stack.http}/ops/rollout-control?x=1", allow_redirects=False, timeout=10)
    assert response.status_code in (301, 308)
    # Caddy 2.6 leaves a non-default HTTPS port out of the Location (compose uses 443).
    assert re.fullmatch(r"https://localhost(:\d+)?/ops/rollout-control\?x=1", response.headers["Location"])


def test_a_forged_forwarded_proto_from_outside_the_proxy_is_ignored(stack):
    # Claiming HTTPS over plain HTTP: Caddy redirects, the app never sees the request.
    forged = requests.get(
        f"{stack.http}/login/", headers={"X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=10
    )
    assert forged.status_code in (301, 308) and forged.headers["Location"].startswith("https://")
    assert "Sign in" not in forged.text
    # Claiming HTTP over HTTPS: Caddy replaces the header with the real scheme; were the forged
    # value passed on, the app would answer with a redirect to HTTPS (a loop).
    response = stack.session().get(
        f"{stack.https}/login/", headers={"X-Forwarded-Proto": "http"}, allow_redirects=False, timeout=10
    )
    assert response.status_code == 200 and "Sign in" in response.text


def test_the_healthchecks_pass(stack):
    for check in ("web", "worker", "beat"):
        result = stack.run(str(ROOT / "bin" / "healthcheck"), check, PORT=str(stack.web_port), timeout=60)
        assert result.returncode == 0, (check, result.stdout, result.stderr)
    # Caddy's (compose: wget on its admin endpoint).
    assert requests.get(f"http://127.0.0.1:{stack.caddy_admin_port}/config/", timeout=5).status_code == 200
    # /healthz through the proxy, as a monitor outside would see it.
    body = stack.session().get(f"{stack.https}/healthz", timeout=10).json()
    assert body == {"ok": True, "checks": {"database": "ok", "redis": "ok"}}


def test_metrics_need_the_token_and_show_request_histograms_from_both_workers(stack):
    token = ops_token(stack)
    assert requests.get(f"{stack.web}/metrics", timeout=5).status_code == 401
    # New connection per request (Connection: close), so granian's workers share the traffic.
    sent = 0
    pids: set[int] = set()
    for _ in range(400):
        response = requests.get(
            f"{stack.web}/api/plugins/rollouts",
            headers={"Authorization": f"Bearer {token}", **AS_CADDY},
            timeout=10,
        )
        assert response.status_code == 200
        sent += 1
        if sent % 20 == 0:
            pids = {line["pid"] for line in stack.access_lines() if line["route"] == "/api/plugins/rollouts"}
            if len(pids) >= 2:
                break
    assert len(pids) == 2, f"all {sent} requests went to one granian worker: {pids}"
    files = {p.name for p in (stack.tmp / "prometheus").iterdir()}
    assert "histogram_999999.db" not in files, "bin/start-web did not empty PROMETHEUS_MULTIPROC_DIR"
    assert {f"histogram_{pid}.db" for pid in pids} <= files

    series = re.compile(
        r'^molam_http_request_duration_seconds_count\{method="GET",route="/api/plugins/rollouts",status="200"\} (\S+)$',
        re.M,
    )
    scraped_by: set[int] = set()
    for _ in range(60):
        scrape = requests.get(
            f"{stack.web}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}", "Connection": "close"},
            timeout=10,
        )
        assert scrape.status_code == 200
        match = series.search(scrape.text)
        assert match, scrape.text[:2000]
        # Whichever worker answers, the count is every worker's.
        assert float(match.group(1)) == sent
        assert (
            'molam_http_request_duration_seconds_bucket{le="0.25",method="GET",route="/api/plugins/rollouts",status="200"}'
            in scrape.text
        )
        scraped_by = {line["pid"] for line in stack.access_lines() if line["route"] == "/metrics"}
        if scraped_by >= pids:
            break
    assert scraped_by >= pids, "one worker never answered a scrape"


def test_the_access_log_has_one_json_line_per_request(stack):
    response = stack.session().get(
        f"{stack.https}/api/plugins/releases", headers={"X-Request-ID": "req-deploy-1"}, timeout=10
    )
    assert response.status_code == 401 and response.headers["X-Request-ID"] == "req-deploy-1"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in stack.access_lines() if line.get("request_id") == "req-deploy-1"]
        if lines:
            break
        time.sleep(0.1)
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == "/api/plugins/releases" and line["status"] == 401 and line["method"] == "GET"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_sigterm_lets_an_in_flight_request_finish(stack):
    """`docker compose stop web`: SIGTERM to granian (PID 1 thanks to exec in bin/start-web)."""
    token = ops_token(stack)
    port = free_port()
    web = stack.start_web("web-graceful", port)
    result: dict = {}

    def slow_request():
        try:
            response = requests.get(
                f"http://127.0.0.1:{port}/api/plugins/rollouts",
                headers={"Authorization": f"Bearer {token}", **AS_CADDY},
                timeout=30,
            )
            result["status"] = response.status_code
            result["body"] = response.json()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = repr(exc)

    # Hold the rollouts table so the request is still running when SIGTERM arrives.
    dsn = stack.env["DATABASE_URL"]
    with psycopg.connect(dsn) as lock:
        lock.execute("LOCK TABLE plugin_rollouts IN ACCESS EXCLUSIVE MODE")
        client = threading.Thread(target=slow_request)
        client.start()
        time.sleep(1.5)
        assert "status" not in result and "error" not in result, result
        web.proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert web.proc.poll() is None, "granian exited with a request in flight"
        lock.rollback()  # releases the table
    client.join(20)
    assert result.get("status") == 200, result
    assert "rollouts" in result["body"]
    assert web.proc.wait(20) == 0
    # Stopped: no new request is accepted.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=3)

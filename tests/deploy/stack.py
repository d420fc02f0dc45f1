"""The compose stack's pieces, started the way docker-compose.yml starts them, without Docker.

Same commands and environment as the compose services: a throwaway PostgreSQL database and a
Redis server of their own; ``migrate`` runs once and must exit 0 before anything else starts;
``bin/start-web`` (granian, 2 workers) on a free loopback port; the Celery worker and beat;
Caddy with ``deploy/Caddyfile`` on free loopback ports, its internal CA for ``localhost``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SECRET_KEY = "deploy-test-secret-key-" + "x" * 40
METRICS_TOKEN = "deploy-test-metrics-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise RuntimeError(f"{tool} is not installed (Debian package: {package}); the deploy tests need it")
    return path


def wait_until(
    predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None
):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}\n{tail}")
        try:
            if predicate():
                return
        except (OSError, requests.RequestException) as exc:
            last_error = exc
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what}: not ready after {timeout} s (last error: {last_error!r})\n{tail}")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    database: str
    admin_dsn: str
    web_port: int = 0
    http_port: int = 0
    https_port: int = 0
    caddy_admin_port: int = 0
    services: dict[str, Service] = field(default_factory=dict)

    # --- commands as compose runs them -------------------------------------------------------
    def run(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), cwd=ROOT, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout
        )

    def start(self, name: str, *args: str, **env: str) -> Service:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        service = Service(name, proc, log)
        self.services[name] = service
        return service

    def start_web(self, name: str, port: int, **env: str) -> Service:
        service = self.start(
            name, str(ROOT / "bin" / "start-web"), PORT=str(port), WEB_HOST="127.0.0.1", **env
        )
        wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
            60,
            f"granian ({name})",
            service.proc,
            service.log,
        )
        return service

    def stop_all(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    # --- addresses -------------------------------------------------------------------------
    @property
    def https(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://localhost:{self.http_port}"

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ca_root(self) -> Path:
        return self.tmp / "xdg-data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def session(self) -> requests.Session:
        session = requests.Session()
        # Not the environment's REQUESTS_CA_BUNDLE, which would override verify: trust Caddy's
        # internal root only, as an operator given root.crt would.
        session.trust_env = False
        session.verify = str(self.ca_root)
        return session

    def access_lines(self, service: str = "web") -> list[dict]:
        import json

        lines = []
        for raw in self.services[service].log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("logger") == "molam.access":
                    lines.append(line)
        return lines


def _database_urls() -> tuple[str, str, str]:
    """A fresh database on the test suite's PostgreSQL server (DATABASE_URL)."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/molam_upgrades")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        raise RuntimeError(f"the deploy tests need PostgreSQL (DATABASE_URL is {base!r})")
    name = f"molam_stack_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    return admin, urlunsplit(parts._replace(path=f"/{name}")), name


def build_stack(tmp: Path) -> Stack:
    caddy = require("caddy", "caddy")
    redis_server = require("redis-server", "redis-server")
    admin_dsn, database_url, name = _database_urls()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    redis_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        # The pytest process's own settings do not leak into the "containers".
        if key
        not in {"DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER", "REDIS_URL", "DATABASE_URL", "DEBUG"}
    }
    https_port, http_port = free_port(), free_port()
    env.update(
        {
            "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
            # docker-compose.yml's x-app environment, with the hosts of this machine.
            "DEBUG": "0",
            "SECRET_KEY": SECRET_KEY,
            "METRICS_TOKEN": METRICS_TOKEN,
            "ALLOWED_HOSTS": "localhost,127.0.0.1",
            "CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "TRUST_PROXY_HEADERS": "1",
            "LOG_FORMAT": "json",
            # What the image holds: collected static files, the var folder.
            "STATIC_ROOT": str(tmp / "staticfiles"),
            "MOLAM_VAR_DIR": str(tmp / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
            "PYTHONUNBUFFERED": "1",
            # The image's source folder is on the path (Dockerfile: PYTHONPATH=/app).
            "PYTHONPATH": str(ROOT),
        }
    )
    stack = Stack(tmp=tmp, env=env, database=name, admin_dsn=admin_dsn)
    (tmp / "var").mkdir()
    try:
        redis = stack.start(
            "redis",
            redis_server,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        )
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", redis_port), timeout=1).close() is None,
            20,
            "redis",
            redis.proc,
            redis.log,
        )
        # Image build step, then the one-shot migrate service.
        collect = stack.run(sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0")
        if collect.returncode != 0:
            raise RuntimeError(f"collectstatic failed: {collect.stderr[-3000:]}")
        migrate = stack.run(sys.executable, "manage.py", "migrate", "--noinput")
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed: {migrate.stdout[-2000:]} {migrate.stderr[-3000:]}")
        stack.migrate_output = migrate.stdout

        # Left over from a "previous run": bin/start-web must empty the folder.
        (tmp / "prometheus").mkdir()
        (tmp / "prometheus" / "histogram_999999.db").write_bytes(b"stale")
        stack.web_port = free_port()
        stack.start_web("web", stack.web_port)

        worker = stack.start(
            "worker", "celery", "-A", "molam_upgrades", "worker", "--loglevel=INFO", "--concurrency=1"
        )
        beat = stack.start("beat", "celery", "-A", "molam_upgrades", "beat", "--loglevel=INFO")
        # Compose gives them a start period before the first healthcheck counts; so does this.
        wait_until(
            lambda: " ready." in worker.log.read_text(errors="replace"),
            120,
            "celery worker",
            worker.proc,
            worker.log,
        )
        wait_until(
            lambda: any((tmp / "var").glob("celerybeat-schedule*")), 60, "celery beat", beat.proc, beat.log
        )

        stack.http_port, stack.https_port, stack.caddy_admin_port = http_port, https_port, free_port()
        caddy_service = stack.start(
            "caddy",
            caddy,
            "run",
            "--config",
            str(ROOT / "deploy" / "Caddyfile"),
            "--adapter",
            "caddyfile",
            DOMAIN="localhost",
            UPSTREAM=f"127.0.0.1:{stack.web_port}",
            HTTP_PORT=str(http_port),
            HTTPS_PORT=str(https_port),
            CADDY_ADMIN=f"127.0.0.1:{stack.caddy_admin_port}",
            CADDY_BIND="127.0.0.1",
            XDG_DATA_HOME=str(tmp / "xdg-data"),
            XDG_CONFIG_HOME=str(tmp / "xdg-config"),
            HOME=str(tmp),
        )
        wait_until(
            lambda: (
                stack.ca_root.exists()
                and stack.session().get(f"{stack.https}/healthz", timeout=3).status_code == 200
            ),
            60,
            "caddy",
            caddy_service.proc,
            caddy_service.log,
        )
    except BaseException:
        stack.stop_all()
        drop_database(stack)
        raise
    return stack


def drop_database(stack: Stack) -> None:
    with psycopg.connect(stack.admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{stack.database}" WITH (FORCE)')

"""docker-compose.yml, the Dockerfile and the lock files, checked as files (the running stack
is tests/deploy/test_stack.py). ``docker compose config`` validates the file too where the
compose plugin is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import yaml

from .stack import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP = ("migrate", "web", "worker", "beat")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_the_services_and_their_start_order():
    assert set(SERVICES) == {"migrate", "web", "worker", "beat", "caddy", "postgres", "redis"}
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("web", "worker", "beat"):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert SERVICES[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert "migrate" not in " ".join(SERVICES[name]["command"])  # migrations run once, in migrate
    assert SERVICES["caddy"]["depends_on"] == {"web": {"condition": "service_healthy"}}


def test_every_start_command_is_exec_form_so_sigterm_reaches_the_process():
    for name, service in SERVICES.items():
        command = service.get("command")
        if command is None:
            continue
        assert isinstance(command, list), f"{name}: a string command runs under sh, which ignores SIGTERM"
        assert command[:2] != ["sh", "-c"], name
    start_web = (ROOT / "bin" / "start-web").read_text()
    assert re.search(r"^exec granian ", start_web, re.M)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["bin/start-web"]' in dockerfile


def test_only_the_proxy_is_reachable_from_outside():
    published = {name for name, service in SERVICES.items() if service.get("ports")}
    assert published == {"caddy"}
    assert SERVICES["caddy"]["ports"][:2] == ["80:80", "443:443"]
    assert SERVICES["web"]["expose"] == ["8000"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy {$UPSTREAM:web:8000}" in caddyfile
    assert SERVICES["caddy"]["environment"]["UPSTREAM"] == "web:8000"
    for name in APP:
        assert SERVICES[name]["environment"]["TRUST_PROXY_HEADERS"] == "1"


def test_secrets_come_from_the_env_file_and_each_is_documented():
    example = env_example()
    for name in APP:
        service = SERVICES[name]
        assert service["env_file"] == ".env"
        environment = service["environment"]
        assert environment["DEBUG"] == "0"
        for key, value in environment.items():
            # No secret literal in the file: credentials only through ${...} from .env.
            assert not re.search(r"(?i)(password|secret|token)", key) or "${" in value
    assert "${POSTGRES_PASSWORD:?" in SERVICES["web"]["environment"]["DATABASE_URL"]
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for required in ("DOMAIN", "SECRET_KEY", "POSTGRES_PASSWORD", "METRICS_TOKEN"):
        assert required in example, f".env.example does not document {required}"
    for variable in set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text())):
        assert variable in example or f"# {variable}=" in (ROOT / ".env.example").read_text(), variable


def test_every_long_running_service_has_a_healthcheck_that_can_pass():
    for name in ("web", "worker", "beat", "caddy", "postgres", "redis"):
        assert SERVICES[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert SERVICES["web"]["healthcheck"]["test"] == ["CMD", "bin/healthcheck", "web"]
    # The web check asks http://127.0.0.1:8000/healthz: that host must be allowed.
    allowed = SERVICES["web"]["environment"]["ALLOWED_HOSTS"].split(",")
    assert "127.0.0.1" in allowed
    healthcheck = (ROOT / "bin" / "healthcheck").read_text()
    assert "http://127.0.0.1:" in healthcheck
    assert (
        'HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 CMD ["bin/healthcheck", "web"]'
        in (ROOT / "Dockerfile").read_text()
    )


def test_the_image_installs_locked_dependencies_first_and_runs_as_a_user():
    lines = [
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line and not line.startswith("#")
    ]
    copy_lock = lines.index("COPY requirements.lock ./")
    install = lines.index("RUN pip install -r requirements.lock")
    copy_source = lines.index("COPY . .")
    assert copy_lock < install < copy_source  # dependency layer cached across source edits
    assert any(line.startswith("USER molam") for line in lines)
    assert any("collectstatic" in line for line in lines)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv"} <= set(ignored)


def _pinned(lock: str) -> dict[str, str]:
    return {
        match.group(1).lower().replace("_", "-"): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", lock, re.M)
    }


def _names(requirements: list[str]) -> set[str]:
    return {re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower().replace("_", "-") for req in requirements}


def test_the_lock_files_pin_every_dependency_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pinned((ROOT / "requirements.lock").read_text())
    dev = _pinned((ROOT / "requirements-dev.lock").read_text())
    missing = _names(project["dependencies"]) - set(runtime)
    assert not missing, f"requirements.lock is stale (run make lock): {sorted(missing)}"
    extras = (
        project["dependencies"]
        + project["optional-dependencies"]["dev"]
        + project["optional-dependencies"]["agent"]
    )
    missing = _names(extras) - set(dev)
    assert not missing, f"requirements-dev.lock is stale (run make lock): {sorted(missing)}"
    # The image and the tests run the same versions.
    assert {name: version for name, version in runtime.items() if dev.get(name) != version} == {}


def test_docker_compose_accepts_the_file_where_the_compose_plugin_exists(tmp_path):
    """`docker compose config` with the documented .env; the structural tests above run everywhere."""
    docker = shutil.which("docker")
    has_compose = (
        docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    )
    if not has_compose:
        # Not a skip: the compose file is still parsed and checked by every test above.
        assert COMPOSE["name"] == "molam-upgrades"
        return
    # A project folder as an operator has it after step 2: the compose file and a .env.
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [docker, "compose", "config", "--quiet"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr

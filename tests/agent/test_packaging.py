"""The agent installs alone on a merchant host and needs nothing newer than Python 3.9.

``pip install ./molam_agent`` goes into a fresh virtual environment (no system site packages,
so no Django), from a copy of the folder so that the build leaves nothing in the working tree.
``--no-deps``: pip builds it as a merchant's pip would (an isolated build that fetches setuptools
from the package index, then cached), but the runtime dependencies are not downloaded: they are
checked from the installed metadata, and the commands run here do not need them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from molam_agent import __version__

from .builders import signing_public_key, write_header
from .conftest import MERCHANT, REPO, to_toml

AGENT_DIR = REPO / "molam_agent"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install ./molam_agent``; returns its bin directory."""
    root = tmp_path_factory.mktemp("agent-dist")
    src = root / "src" / "molam_agent"
    shutil.copytree(
        AGENT_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    )
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    proc = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip install ./molam_agent failed:\n{proc.stdout}\n{proc.stderr}"
    return bin_dir


def _run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / "molam-agent"), *args], capture_output=True, text=True, timeout=60, cwd="/"
    )


def test_the_installed_console_script_prints_its_version(installed):
    proc = _run(installed, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"molam-agent {__version__}"


def test_help_lists_the_exit_codes(installed):
    proc = _run(installed, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "exit codes:" in proc.stdout
    for code in ("0 ", "1 ", "2 ", "64 "):
        assert f"\n  {code}" in proc.stdout, proc.stdout
    proc = _run(installed, "upgrade", "--help")
    assert "--dry-run" in proc.stdout and "64" in proc.stdout


def test_a_missing_config_file_is_named_and_exits_64(installed, tmp_path):
    missing = tmp_path / "nowhere" / "agent.toml"
    proc = _run(installed, "status", "--config", str(missing))
    assert proc.returncode == 64
    assert f"no config file at {missing}" in proc.stderr


def test_the_distribution_has_no_django_and_declares_only_cryptography(installed):
    code = (
        "import importlib.metadata as m, importlib.util as u, json;"
        "print(json.dumps({'requires': m.requires('molam-agent'), 'django': bool(u.find_spec('django')),"
        "'location': str(m.distribution('molam-agent').locate_file('molam_agent'))}))"
    )
    proc = subprocess.run([str(installed / "python"), "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["django"] is False
    assert str(REPO) not in info["location"]  # the installed copy, not the working tree
    plain = [r for r in info["requires"] if "extra ==" not in r]
    assert sorted(r.split(";")[0].split(">")[0].strip() for r in plain) == ["cryptography", "tomli"]
    assert any("python_version" in r for r in plain if r.startswith("tomli"))
    extras = {r.split("extra ==")[1].strip(" \"'") for r in info["requires"] if "extra ==" in r}
    assert extras == {"mysql", "postgresql"}


def test_the_installed_agent_runs_a_verb(installed, tmp_path):
    plugin = tmp_path / "plugins" / "molam-form"
    plugin.mkdir(parents=True)
    write_header(plugin, "3.9.0")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        to_toml(
            {
                "control_plane": {
                    "url": "http://127.0.0.1:9/api/plugins/",
                    "token": "t",
                    "merchant_id": MERCHANT,
                },
                "plugin": {
                    "name": "woocommerce",
                    "dir": str(plugin),
                    "version_from": "wp-header:molam-form.php",
                },
                "storage": {"state_dir": str(tmp_path / "state")},
                "release": {"public_key": signing_public_key()},
            }
        )
    )
    proc = _run(installed, "status", "--config", str(cfg), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["installed_version"] == "3.9.0"


def test_the_agent_needs_nothing_newer_than_python_3_9():
    vermin = Path(sys.executable).with_name("vermin")
    assert vermin.exists(), "vermin is missing: pip install -e '.[dev]' (it is in the dev extra)"
    proc = subprocess.run(
        [str(vermin), "--target=3.9-", "--no-tips", "--violations", str(AGENT_DIR)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"molam_agent needs a Python newer than 3.9:\n{proc.stdout}{proc.stderr}"

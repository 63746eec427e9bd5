"""docker-compose.yml and .dockerignore, checked by reading (no Docker engine runs here).

The compose file is parsed as YAML (anchors and merge keys resolved, as compose resolves them); its
web/worker/beat health checks are run for real by test_commands.py against the running stack.
"""

import re
from pathlib import Path

from tests.deploy.conftest import ROOT, compose, healthcheck_argv, read_image

APP_SERVICES = {"web", "worker", "beat"}
BACKING = {"postgres", "redis"}


def test_every_long_running_service_has_a_health_check():
    services = compose()["services"]

    assert set(services) == APP_SERVICES | BACKING | {"migrate"}
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"  # a one-shot job: done, not healthy
            continue
        assert service["healthcheck"]["test"], name
        assert service["healthcheck"]["interval"], name
    assert services["postgres"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert {name: healthcheck_argv(name) for name in APP_SERVICES} == {
        "web": ["health", "web"],
        "worker": ["health", "worker"],
        "beat": ["health", "beat"],
    }


def test_services_wait_for_healthy_dependencies_and_the_migration():
    services = compose()["services"]

    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        assert services[name]["command"] == [name]  # the entrypoint's command, as tests/deploy runs it
        assert services[name]["environment"]["DEBUG"] == "false"
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no check"


def test_image_runs_the_entrypoint_with_debug_off():
    image = read_image()

    assert image.entrypoint == ["/app/scripts/entrypoint.sh"]
    assert image.cmd == ["web"]
    assert image.env["DEBUG"] == "false"
    assert any(run.split() == ["/app/scripts/entrypoint.sh", "collectstatic"] for run in image.runs)
    assert (ROOT / "scripts" / "entrypoint.sh").stat().st_mode & 0o111  # executable, as COPY keeps it


# --- .dockerignore ---------------------------------------------------------------------------------------
def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _pattern(pattern: str) -> re.Pattern[str]:
    """Docker's pattern (Go filepath.Match plus `**`), as a regular expression over a relative path."""
    out = ""
    i = 0
    pattern = pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def excluded(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last matching line wins (`!` re-includes);
    a line matching a directory leaves out everything under it."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for line in _dockerignore():
        negate = line.startswith("!")
        regex = _pattern(line[1:] if negate else line)
        if any(regex.match(prefix) for prefix in prefixes):
            result = not negate
    return result


def test_dockerignore_keeps_secrets_environments_and_caches_out_of_the_image():
    for path in [
        ".env",
        ".env.production",
        ".venv/bin/python",
        ".tools/bin/uv",
        ".git/HEAD",
        "db.sqlite3",
        "staticfiles/admin/css/base.css",
        "node_modules/x/index.js",
        "payments/__pycache__/models.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".pytest_cache/v",
        ".hypothesis/examples/x",
        "celerybeat-schedule",
    ]:
        assert excluded(path), path


def test_dockerignore_keeps_what_the_image_needs():
    for path in [
        "manage.py",
        "pyproject.toml",
        "uv.lock",
        ".env.example",
        "config/settings.py",
        "config/gunicorn.conf.py",
        "scripts/entrypoint.sh",
        "templates/admin/index.html",
        "payments/migrations/0001_initial.py",
    ]:
        assert not excluded(path), path

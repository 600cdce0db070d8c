"""docker-compose.yml, as `docker-compose config` reads it with the values of .env.example: every
service the deployment needs, health-checked and started in order, images pinned, no secrets in
the file, and an environment the app accepts in production."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = {"migrate", "temporal-setup"}
APP = {"api", "worker", "migrate", "temporal-setup"}
SECRETS = ("PASSWORD", "PWD", "SECRET", "TOKEN", "KEY")


def config(env_file: Path) -> dict:
    docker_compose = shutil.which("docker-compose")
    if not docker_compose:
        pytest.fail("docker-compose not found: run 'make test', which installs it")
    done = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def services() -> dict:
    return config(ROOT / ".env.example")["services"]


def test_the_services_of_the_topology(services):
    assert set(services) == {
        "postgres",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "migrate",
        "ehr",
        "api",
        "worker",
        "proxy",
    }
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["api"]["command"][:2] == ["followthrough", "api"]
    assert services["worker"]["command"][:2] == ["followthrough", "worker"]
    assert services["migrate"]["command"] == ["followthrough", "migrate"]
    assert services["temporal-setup"]["command"] == ["followthrough", "register-search-attributes"]
    # `--scale worker=4` needs a worker without a fixed name or a published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy", "temporal-ui"}  # the API only behind the proxy; never the EHR
    assert all(str(p).startswith("127.0.0.1:") for p in services["temporal-ui"]["ports"])


def test_every_service_is_health_checked_and_starts_after_what_it_needs(services):
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"

    def needs(name: str) -> dict[str, str]:
        return {dep: how["condition"] for dep, how in services[name]["depends_on"].items()}

    assert needs("temporal") == {"postgres": "service_healthy"}
    assert needs("migrate") == {"postgres": "service_healthy"}
    assert needs("temporal-setup") == {"temporal": "service_healthy"}
    assert needs("temporal-ui") == {"temporal": "service_healthy"}
    for name in ("api", "worker"):
        assert needs(name) == {
            "migrate": "service_completed_successfully",
            "temporal-setup": "service_completed_successfully",
            "ehr": "service_healthy",
        }
    assert needs("proxy") == {"api": "service_healthy"}


PINNED = re.compile(r"[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.-]+)?")  # never `latest` or a bare major


def test_a_stop_gives_the_api_and_workers_their_grace(services):
    # docker sends SIGTERM, then SIGKILL after the stop grace period (10 s unless set).
    grace = {
        "api": Settings().api_shutdown_grace_seconds,
        "worker": Settings().worker_shutdown_grace_seconds,
    }
    for name, seconds in grace.items():
        period = services[name].get("stop_grace_period", "10s")
        assert period.endswith("s") and float(period[:-1]) > seconds, (name, period)


def test_images_are_pinned_by_version(services):
    for name, service in services.items():
        assert PINNED.fullmatch(service["image"]), f"{name}: {service['image']}"
    for dockerfile in (ROOT / "Dockerfile", ROOT / "ehr-sandbox" / "Dockerfile"):
        bases = re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.MULTILINE)
        assert bases and all(PINNED.fullmatch(base) for base in bases), bases


def test_no_secret_is_written_in_the_file():
    raw = yaml.safe_load(COMPOSE.read_text())
    blocks = [raw["x-app"]["environment"]] + [
        s["environment"] for s in raw["services"].values() if isinstance(s.get("environment"), dict)
    ]
    for environment in blocks:
        for key, value in environment.items():
            if any(word in key for word in SECRETS) or key == "DATABASE_URL":
                assert "${" in str(value), f"{key} is written in the file, not read from .env"
    # A missing secret stops `docker-compose config` (and `up`) rather than running without it.
    empty = ROOT / "test-output" / "empty.env"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text("")
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "--env-file", str(empty), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "in .env" in done.stderr


def test_the_app_gets_the_environment_it_needs_in_production(services, monkeypatch):
    for name in APP:
        environment = services[name]["environment"]
        assert environment["ENVIRONMENT"] == "production"
        assert environment["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert environment["DATABASE_URL"].startswith("postgresql://")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/followthrough")
        assert environment["FHIR_BASE_URL"] == "http://ehr:8103/fhir/R4"
        assert environment["OIDC_ISSUER"].startswith("https://")
        assert environment["CSRF_SECRET"] != environment["JWT_SECRET"]
        # The app's settings accept it, read as the app reads it (from the environment):
        # production refuses default or short secrets and the development payload key.
        for key, value in environment.items():
            monkeypatch.setenv(key, str(value))
        settings = Settings(_env_file=None)
        assert settings.environment == "production"
        assert settings.keyring is not None and settings.payload_key_id in settings.payload_keys
    assert services["worker"]["environment"]["WORKER_METRICS_ADDRESS"] == "0.0.0.0:9464"
    # The Temporal UI shows encrypted payloads through the API's codec server.
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_CODEC_ENDPOINT"] == environment["PUBLIC_URL"] + "/codec"
    assert environment["TEMPORAL_UI_ORIGIN"] == "http://localhost:8080"
    temporal = services["temporal"]["environment"]
    assert (temporal["DB"], temporal["POSTGRES_SEEDS"]) == ("postgres12", "postgres")
    assert temporal["POSTGRES_PWD"] == services["postgres"]["environment"]["POSTGRES_PASSWORD"]

"""docker-compose.yml, Dockerfile and .dockerignore, checked structurally (no Docker here).

The point is the wiring that breaks silently: a service name the worker's DSN does not match, a
dependency that does not wait for readiness, an unpinned image, a port open to the network.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import worker
from sebaya.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_SERVICES = {
    "postgres",
    "temporal-admin-tools",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    "sebaya-migrate",
    "sebaya-worker",
    "mailcatcher",
}
ONE_SHOT = {"temporal-admin-tools", "temporal-create-namespace", "sebaya-migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def with_defaults(value: str) -> str:
    """What Compose makes of ``value`` when no variable is set: ``${X:-d}`` -> ``d``."""
    escaped = "\0"  # `$$` is a literal `$`: set it aside before interpolating
    value = value.replace("$$", escaped)
    value = re.sub(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}", r"\1", value)
    assert "$" not in value, f"variable without a default: {value}"
    return value.replace(escaped, "$")


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: with_defaults(str(value)) for key, value in env.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[1]) for mapping in service.get("ports", [])}


def conditions(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    assert isinstance(depends, dict), "use the long depends_on form, with conditions"
    return {name: spec["condition"] for name, spec in depends.items()}


def test_all_services_are_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
        if "build" in svc:
            assert tag == version, f"{name}: tag the built image with the package version"
    # The schema tool must match the server it prepares the schema for.
    server_tag = services["temporal"]["image"].rpartition(":")[2]
    for job in ("temporal-admin-tools", "temporal-create-namespace"):
        assert services[job]["image"] == f"temporalio/admin-tools:{server_tag}"


def test_postgres_is_healthchecked_and_persistent(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    check = " ".join(pg["healthcheck"]["test"])
    assert "pg_isready" in check
    env = env_of(pg)
    assert f"-U {env['POSTGRES_USER']}" in check and f"-d {env['POSTGRES_DB']}" in check
    volume, _, target = pg["volumes"][0].partition(":")
    assert target == "/var/lib/postgresql/data"
    assert volume in (compose.get("volumes") or {}), "named volumes must be declared"


def test_every_named_volume_is_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_start_order_waits_for_readiness(services: dict[str, dict[str, Any]]) -> None:
    assert conditions(services["temporal-admin-tools"]) == {"postgres": "service_healthy"}
    assert conditions(services["temporal"]) == {
        "temporal-admin-tools": "service_completed_successfully"
    }
    assert conditions(services["temporal-create-namespace"]) == {"temporal": "service_healthy"}
    assert conditions(services["temporal-ui"]) == {"temporal": "service_healthy"}
    assert conditions(services["sebaya-migrate"]) == {"postgres": "service_healthy"}
    assert conditions(services["sebaya-worker"]) == {
        "postgres": "service_healthy",
        "sebaya-migrate": "service_completed_successfully",
        "temporal": "service_healthy",
        "temporal-create-namespace": "service_completed_successfully",
        "mailcatcher": "service_healthy",
    }
    # Conditions must be satisfiable: health needs a healthcheck, completion a one-shot job.
    for name, svc in services.items():
        for dep, condition in conditions(svc).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT and services[dep].get("restart") == "no"


def test_temporal_schema_job_prepares_both_databases(services: dict[str, dict[str, Any]]) -> None:
    script = " ".join(services["temporal-admin-tools"]["command"])
    assert "temporal-sql-tool" in script and "--plugin postgres12" in script
    assert "setup-schema" in script and "update-schema" in script
    assert "temporal:temporal" in script and "temporal_visibility:visibility" in script
    assert "/etc/temporal/schema/postgresql/v12" in script
    # It connects with the credentials the Postgres service creates.
    pg = env_of(services["postgres"])
    assert "--ep postgres" in script and f"-u {pg['POSTGRES_USER']}" in script
    assert env_of(services["temporal-admin-tools"])["SQL_PASSWORD"] == pg["POSTGRES_PASSWORD"]


def test_temporal_persists_to_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["temporal"])
    pg = env_of(services["postgres"])
    assert env["DB"] == "postgres12"
    assert (
        env["POSTGRES_SEEDS"] in services
        and services[env["POSTGRES_SEEDS"]] is services["postgres"]
    )
    assert int(env["DB_PORT"]) in container_ports(services["postgres"])
    assert (env["POSTGRES_USER"], env["POSTGRES_PWD"]) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
    )
    assert 7233 in container_ports(services["temporal"])
    assert env_of(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_dynamic_config_enables_time_skipping(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    mount = services["temporal"]["configs"][0]
    assert mount["target"] == env_of(services["temporal"])["DYNAMIC_CONFIG_FILE_PATH"]
    content = yaml.safe_load(compose["configs"][mount["source"]]["content"])
    assert content["frontend.WorkflowTimeSkippingEnabled"] == [{"value": True}]


@pytest.mark.parametrize("name", ["sebaya-worker", "sebaya-migrate"])
def test_sebaya_services_point_at_the_compose_services(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = env_of(services[name])
    aliases = {str(f.validation_alias) for f in Settings.model_fields.values()}
    assert set(env) <= aliases, f"{name}: unknown setting(s) {set(env) - aliases}"

    pg = env_of(services["postgres"])
    dsn = urlsplit(env["SEBAYA_DATABASE_URL"])
    assert dsn.hostname in services and services[dsn.hostname] is services["postgres"]
    assert dsn.port in container_ports(services["postgres"])
    assert (dsn.username, dsn.password, dsn.path) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        f"/{pg['POSTGRES_DB']}",
    )
    if name == "sebaya-worker":
        host, _, port = env["TEMPORAL_ADDRESS"].partition(":")
        assert host == "temporal" and int(port) in container_ports(services["temporal"])
        assert env["TEMPORAL_NAMESPACE"] == "default"  # what temporal-create-namespace creates
        assert "-n default" in " ".join(services["temporal-create-namespace"]["command"])


def test_migrations_run_from_the_event_store_module(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(services["sebaya-migrate"]["command"])
    assert "from eventstore.migrate import migrate" in command


def test_worker_stops_gracefully(services: dict[str, dict[str, Any]]) -> None:
    svc = services["sebaya-worker"]
    grace = int(svc["stop_grace_period"].removesuffix("s"))
    assert grace > worker.GRACEFUL_SHUTDOWN.total_seconds()
    assert svc["restart"] == "unless-stopped"
    assert "build" in svc and "command" not in svc  # the image's CMD: python -m worker


def test_published_ports_are_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = {name: [str(p) for p in svc.get("ports", [])] for name, svc in services.items()}
    assert published["postgres"] == ["127.0.0.1:5433:5432"]
    assert published["temporal"] == ["127.0.0.1:7233:7233"]
    assert published["temporal-ui"] == ["127.0.0.1:8233:8080"]
    assert published["mailcatcher"] == ["127.0.0.1:1025:1025"]
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_dockerfile_builds_a_non_root_worker_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    images = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert images and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", images[0])
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert froms and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert text.rstrip().splitlines()[-1] == 'CMD ["python", "-m", "worker"]'
    assert "pip install" in text


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".sebaya"} <= ignored
    # Everything the wheel needs stays in the context.
    for needed in ("pyproject.toml", "worker.py", "sebaya", "eventstore", "workflows"):
        assert needed not in ignored


def test_schema_script_runs_each_step_for_both_databases(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """Run the job's shell script with a stand-in temporal-sql-tool that logs its arguments."""
    fake = tmp_path / "temporal-sql-tool"
    fake.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    fake.chmod(0o755)
    svc = services["temporal-admin-tools"]
    assert svc["entrypoint"] == ["/bin/sh", "-c"]
    script = with_defaults(svc["command"][0])
    calls = tmp_path / "calls"
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CALLS": str(calls), **env_of(svc)}
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)

    lines = calls.read_text().splitlines()
    base = "--plugin postgres12 --ep postgres -p 5432 -u sebaya --db"
    schema = "/etc/temporal/schema/postgresql/v12"
    assert lines == [
        f"{base} temporal create",
        f"{base} temporal setup-schema -v 0.0",
        f"{base} temporal update-schema -d {schema}/temporal/versioned",
        f"{base} temporal_visibility create",
        f"{base} temporal_visibility setup-schema -v 0.0",
        f"{base} temporal_visibility update-schema -d {schema}/visibility/versioned",
    ]


def test_worker_mails_through_the_catcher(services: dict[str, dict[str, Any]]) -> None:
    catcher = services["mailcatcher"]
    command = catcher["command"]
    assert command[:3] == ["python", "-m", "delivery.catcher"]
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--host"] == "0.0.0.0"  # reachable from the worker's container
    assert int(flags["--port"]) in container_ports(catcher)
    # The mail folder is on the named volume, mounted where the image's user may write.
    volume, _, target = catcher["volumes"][0].partition(":")
    assert volume == "mail"
    assert flags["--dir"].startswith(target.rstrip("/") + "/") and target == "/home/sebaya"
    assert str(flags["--port"]) in " ".join(catcher["healthcheck"]["test"])

    env = env_of(services["sebaya-worker"])
    assert env["SEBAYA_SMTP_HOST"] in services
    assert services[env["SEBAYA_SMTP_HOST"]] is catcher
    assert env["SEBAYA_SMTP_PORT"] == flags["--port"] and env["SEBAYA_SMTP_TLS"] == "none"
    settings = Settings.model_validate(env)
    assert settings.smtp_host == "mailcatcher" and settings.smtp_port == int(flags["--port"])
    # The catcher's own argument parser accepts the command as written.
    from delivery.catcher import build_parser

    args = build_parser().parse_args(command[3:])
    assert (args.host, args.port, str(args.dir)) == ("0.0.0.0", 1025, "/home/sebaya/mail")


def _search_attribute_pairs(script: str) -> dict[str, str]:
    listed = re.search(r"for attr in (.*?); do", script.replace("\\\n", " "), re.S)
    assert listed, "the namespace job does not create the search attributes"
    return dict(pair.split("=", 1) for pair in listed.group(1).split())


def test_namespace_job_registers_every_search_attribute_the_workflows_set(
    services: dict[str, dict[str, Any]],
) -> None:
    from workflows.search_attributes import server_types

    script = with_defaults(services["temporal-create-namespace"]["command"][0])
    assert _search_attribute_pairs(script) == server_types()
    # The worker starts only once they exist (a workflow setting an unknown one fails).
    assert conditions(services["sebaya-worker"])["temporal-create-namespace"] == (
        "service_completed_successfully"
    )


def test_namespace_job_runs_against_a_real_server_and_can_run_again(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The job's script, run twice with the real `temporal` CLI against a dev server."""
    import socket

    from sebaya.settings import temporal_cli_path
    from workflows.search_attributes import server_types

    cli = temporal_cli_path()
    (tmp_path / "temporal").symlink_to(cli)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(cli), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        script = with_defaults(services["temporal-create-namespace"]["command"][0])
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
        for _ in range(2):  # a restart of the stack runs it again: it must not fail
            subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=120,
                           capture_output=True)
        listed = subprocess.run(
            [str(cli), "operator", "search-attribute", "list", "-n", "default",
             "--address", f"127.0.0.1:{port}", "-o", "json"],
            check=True, capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        for name, kind in server_types().items():
            assert re.search(rf'"{name}"\s*:\s*"(?:INDEXED_VALUE_TYPE_)?{kind}"', listed, re.I), (
                f"{name} ({kind}) not registered:\n{listed}")
    finally:
        server.terminate()
        server.wait(timeout=30)

"""Connecting to Temporal the way Temporal's own tools do: a TOML profile file and TEMPORAL_*
variables give the address, namespace, API key and TLS client certificates; mistakes name the
file, profile or variable; the plain setup (tests, embedded stack) keeps working."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import TLSConfig

from sebaya.codec import EncryptionCodec
from sebaya.runtime import (
    TemporalConfigInvalid,
    connect_temporal,
    resolve_services,
)
from sebaya.settings import Settings

PROFILES = """
[profile.default]
address = "localhost:7233"
namespace = "sebaya-dev"

[profile.cloud]
address = "sebaya-prod.a1b2c.tmprl.cloud:7233"
namespace = "sebaya-prod.a1b2c"
api_key = "cloud-api-key"

[profile.mtls]
address = "temporal.internal:7233"
namespace = "sebaya"

[profile.mtls.tls]
client_cert_path = "{cert}"
client_key_path = "{key}"
server_ca_cert_path = "{ca}"
server_name = "temporal.internal"

[profile.mtls.grpc_meta]
x-team = "people-ops"
"""


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(f"-----{name}-----\n".encode())
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILES.format(cert=tmp_path / "client.pem", key=tmp_path / "client.key",
                                    ca=tmp_path / "ca.pem"))
    return path


def settings() -> Settings:
    # The database comes from the environment so no embedded stack is consulted.
    return Settings(SEBAYA_DATABASE_URL="postgresql://db.internal/sebaya")


def test_a_profile_file_selects_address_namespace_and_api_key(profile_file: Path) -> None:
    env = {"TEMPORAL_CONFIG_FILE": str(profile_file)}
    default = resolve_services(settings(), env)
    assert (default.temporal_address, default.namespace) == ("localhost:7233", "sebaya-dev")
    assert default.temporal_api_key is None and default.temporal_tls is None

    cloud = resolve_services(settings(), {**env, "TEMPORAL_PROFILE": "cloud"})
    assert cloud.temporal_address == "sebaya-prod.a1b2c.tmprl.cloud:7233"
    assert cloud.namespace == "sebaya-prod.a1b2c"
    assert cloud.temporal_api_key == "cloud-api-key"
    assert cloud.temporal_tls is True  # an API key implies TLS, as in Temporal's CLI
    assert "cloud-api-key" not in repr(cloud)


def test_mtls_client_certificates_and_grpc_metadata(profile_file: Path, tmp_path: Path) -> None:
    mtls = resolve_services(settings(), {"TEMPORAL_CONFIG_FILE": str(profile_file),
                                         "TEMPORAL_PROFILE": "mtls"})
    assert isinstance(mtls.temporal_tls, TLSConfig)
    assert mtls.temporal_tls.client_cert == b"-----client.pem-----\n"
    assert mtls.temporal_tls.client_private_key == b"-----client.key-----\n"
    assert mtls.temporal_tls.server_root_ca_cert == b"-----ca.pem-----\n"
    assert mtls.temporal_tls.domain == "temporal.internal"
    assert mtls.temporal_rpc_metadata == {"x-team": "people-ops"}


def test_environment_variables_override_the_profile(profile_file: Path, tmp_path: Path) -> None:
    (tmp_path / "other.pem").write_bytes(b"OTHER CERT\n")
    (tmp_path / "other.key").write_bytes(b"OTHER KEY\n")
    services = resolve_services(settings(), {
        "TEMPORAL_CONFIG_FILE": str(profile_file),
        "TEMPORAL_ADDRESS": "override.example:7233",
        "TEMPORAL_NAMESPACE": "override-ns",
        "TEMPORAL_API_KEY": "env-key",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "other.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "other.key"),
    })
    assert (services.temporal_address, services.namespace) == ("override.example:7233",
                                                               "override-ns")
    assert services.temporal_api_key == "env-key"
    assert isinstance(services.temporal_tls, TLSConfig)
    assert services.temporal_tls.client_cert == b"OTHER CERT\n"
    assert services.temporal_tls.client_private_key == b"OTHER KEY\n"

    # Variables alone, no file at all.
    alone = resolve_services(settings(), {"TEMPORAL_ADDRESS": "t.example:7233",
                                          "TEMPORAL_NAMESPACE": "ns"})
    assert (alone.temporal_address, alone.namespace, alone.temporal_tls) == (
        "t.example:7233", "ns", None)


@pytest.mark.parametrize(("env", "message"), [
    ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"},
     "TEMPORAL_CONFIG_FILE=/nonexistent/temporal.toml: no such file"),
    ({"TEMPORAL_PROFILE": "staging"}, "Temporal profile 'staging' in .*temporal.toml"),
    ({"TEMPORAL_PROFILE": "mtls", "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/c.pem"},
     "Temporal TLS configuration: /nonexistent/c.pem: No such file"),
])
def test_mistakes_name_the_file_profile_or_variable(
    profile_file: Path, env: dict[str, str], message: str
) -> None:
    full = {"TEMPORAL_CONFIG_FILE": str(profile_file), **env}
    with pytest.raises(TemporalConfigInvalid, match=message):
        resolve_services(settings(), full)


def test_a_broken_toml_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[profile.default\naddress = ")
    with pytest.raises(TemporalConfigInvalid, match=r"bad\.toml"):
        resolve_services(settings(), {"TEMPORAL_CONFIG_FILE": str(bad)})


@pytest.mark.temporal
async def test_the_plain_setup_still_connects(
    temporal_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = {"TEMPORAL_ADDRESS": address}
    services = resolve_services(settings(), env)
    assert services.temporal_tls is None and services.temporal_api_key is None
    client = await connect_temporal(services, settings=settings())
    assert await client.service_client.check_health()
    assert client.data_converter.payload_codec is None

    key = base64.b64encode(os.urandom(32)).decode()
    keyed = Settings(SEBAYA_DATABASE_URL="postgresql://db.internal/sebaya",
                     SEBAYA_PAYLOAD_KEYS=f"k1:{key}")
    client = await connect_temporal(resolve_services(keyed, env), settings=keyed)
    assert isinstance(client.data_converter.payload_codec, EncryptionCodec)


@pytest.mark.parametrize(("env", "message"), [
    ({"TEMPORAL_CONFIG_FILE": "/nonexistent/temporal.toml"}, "TEMPORAL_CONFIG_FILE"),
    ({"SEBAYA_PAYLOAD_KEYS": "k1:short"}, "SEBAYA_PAYLOAD_KEYS entry 1"),
    ({"SEBAYA_METRICS_ADDRESS": "9464"}, "SEBAYA_METRICS_ADDRESS"),
], ids=["profile", "keys", "metrics"])
def test_the_worker_refuses_bad_configuration_at_once(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "SEBAYA_"))}
    # Services that do not exist: the worker must stop before trying to reach them.
    base.update(SEBAYA_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
                TEMPORAL_ADDRESS="127.0.0.1:1", SEBAYA_STATE_DIR=str(tmp_path),
                SEBAYA_LOG_FORMAT="json")
    done = subprocess.run([sys.executable, "-m", "worker"], env={**base, **env},
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr

"""sip.listen with several transports, sip.tls, sip.connections and vendor tls: what the
loader builds and what ``ccswitch check`` refuses, with file, key and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ccswitch.config import check_config
from ccswitch.model import ClientVerify, Listener, Transport
from tests.certs import Issued, TestCA
from tests.config.test_config import config_error, failed, plan, reason_of, service, setup


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "tls")


@pytest.fixture
def node_cert(ca: TestCA) -> Issued:
    return ca.issue("node")


def tls_service(cert: Issued, **tls: Any) -> dict[str, Any]:
    cfg = service()
    cfg["sip"]["listen"] = [{"transport": "udp", "address": "127.0.0.1", "port": 5060},
                            {"transport": "tcp", "address": "127.0.0.1", "port": 5060},
                            {"transport": "tls", "address": "127.0.0.1", "port": 5061}]
    cfg["sip"]["tls"] = {"certificate": str(cert.certificate), "key": str(cert.key), **tls}
    return cfg


def test_listen_string_is_udp(tmp_path: Path) -> None:
    """The old ``host:port`` form still loads, as one UDP listener."""
    config = check_config(setup(tmp_path)).config
    assert config is not None
    assert config.sip.listeners == (Listener(transport=Transport.UDP, host="127.0.0.1",
                                             port=5060),)


def test_listen_list_with_tls(tmp_path: Path, ca: TestCA, node_cert: Issued) -> None:
    """A list of listeners and sip.tls load into typed listeners and TLS settings."""
    cfg = tls_service(node_cert, ca=str(ca.certificate), verify_client="required")
    config = check_config(setup(tmp_path, cfg)).config
    assert config is not None
    assert [(item.transport, item.port) for item in config.sip.listeners] == [
        (Transport.UDP, 5060), (Transport.TCP, 5060), (Transport.TLS, 5061)]
    assert config.sip.tls is not None
    assert config.sip.tls.verify_client is ClientVerify.REQUIRED
    assert config.sip.tls.identity.certificate == node_cert.certificate


def test_unknown_transport(tmp_path: Path) -> None:
    """An unknown transport is refused by name, on its list item."""
    cfg = service()
    cfg["sip"]["listen"] = [{"transport": "sctp", "address": "127.0.0.1", "port": 5060}]
    assert "unknown transport 'sctp'" in config_error(tmp_path, cfg,
                                                      "sip.listen[0].transport")


def test_listen_needs_udp(tmp_path: Path) -> None:
    """A listener list without UDP is refused."""
    cfg = service()
    cfg["sip"]["listen"] = [{"transport": "tcp", "address": "127.0.0.1", "port": 5060}]
    assert "needs a udp listener" in config_error(tmp_path, cfg, "sip.listen")


def test_tls_listener_needs_tls_section(tmp_path: Path, node_cert: Issued) -> None:
    """A tls listener without sip.tls is refused."""
    cfg = tls_service(node_cert)
    del cfg["sip"]["tls"]
    assert "needs sip.tls" in config_error(tmp_path, cfg, "sip.listen")


def test_missing_certificate_file(tmp_path: Path, node_cert: Issued) -> None:
    """A certificate file that does not exist is named in the error."""
    cfg = tls_service(node_cert)
    cfg["sip"]["tls"]["certificate"] = str(tmp_path / "nope.crt")
    assert "nope.crt" in config_error(tmp_path, cfg, "sip.tls.certificate")


def test_key_not_matching_certificate(tmp_path: Path, ca: TestCA, node_cert: Issued) -> None:
    """A key of another certificate is refused on the key."""
    cfg = tls_service(node_cert)
    cfg["sip"]["tls"]["key"] = str(ca.issue("other").key)
    assert "does not match" in config_error(tmp_path, cfg, "sip.tls.key")


def test_verify_client_needs_ca(tmp_path: Path, node_cert: Issued) -> None:
    """Checking client certificates without a CA file is refused."""
    cfg = tls_service(node_cert, verify_client="required")
    assert "needs ca" in config_error(tmp_path, cfg, "sip.tls.verify_client")


def test_expired_certificate_warns(tmp_path: Path, ca: TestCA) -> None:
    """An expired node certificate loads with a warning naming its end date."""
    result = check_config(setup(tmp_path, tls_service(ca.issue("old", expired=True))))
    assert result.config is not None
    assert any("sip.tls.certificate" in w and "expired" in w for w in map(str, result.warnings))


def test_sips_agent_without_tls(tmp_path: Path) -> None:
    """A sips: agent URI on a node without TLS is an error on the agent's uri."""
    data = plan()
    data["agents"]["alice"]["uri"] = "sips:alice@127.0.0.1:5091"
    path = setup(tmp_path, plans={"main.yaml": data})
    assert "transport tls is not configured" in reason_of(failed(path), "agents.alice.uri")


def test_tcp_trunk_without_tcp_listener(tmp_path: Path) -> None:
    """A ;transport=tcp trunk on a UDP-only node is an error on the trunk."""
    data = plan()
    data["vendors"] = {"acme": {"trunks": ["sip:q@127.0.0.1:5070;transport=tcp"],
                                "max_channels": 2}}
    path = setup(tmp_path, plans={"main.yaml": data})
    assert "transport tcp is not configured" in reason_of(failed(path),
                                                          "vendors.acme.trunks[0]")


def test_vendor_client_certificate(tmp_path: Path, ca: TestCA, node_cert: Issued) -> None:
    """A vendor's tls certificate and key load into the vendor."""
    client = ca.issue("vendor-client")
    data = plan()
    data["vendors"] = {"acme": {"trunks": ["sips:q@127.0.0.1:5071"], "max_channels": 2,
                                "tls": {"certificate": str(client.certificate),
                                        "key": str(client.key)}}}
    result = check_config(setup(tmp_path, tls_service(node_cert), {"main.yaml": data}))
    assert result.config is not None, result.errors
    vendor_tls = result.config.dialplan.vendors["acme"].tls
    assert vendor_tls is not None and vendor_tls.key == client.key


def test_vendor_key_not_matching(tmp_path: Path, ca: TestCA, node_cert: Issued) -> None:
    """A vendor client key that does not match its certificate is refused on the key."""
    data = plan()
    data["vendors"] = {"acme": {"trunks": ["sips:q@127.0.0.1:5071"], "max_channels": 2,
                                "tls": {"certificate": str(ca.issue("a").certificate),
                                        "key": str(ca.issue("b").key)}}}
    path = setup(tmp_path, tls_service(node_cert), {"main.yaml": data})
    assert "does not match" in reason_of(failed(path), "vendors.acme.tls.key")


def test_connection_limits(tmp_path: Path) -> None:
    """sip.connections loads; a zero per-source cap is refused."""
    cfg = service()
    cfg["sip"]["connections"] = {"idle_timeout": 30, "max_per_source": 4}
    config = check_config(setup(tmp_path, cfg)).config
    assert config is not None
    assert (config.sip.connections.idle_timeout,
            config.sip.connections.max_per_source) == (30.0, 4)
    cfg["sip"]["connections"]["max_per_source"] = 0
    (tmp_path / "b").mkdir()
    assert ">= 1" in config_error(tmp_path / "b", cfg, "sip.connections.max_per_source")

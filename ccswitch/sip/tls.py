"""TLS for SIP (RFC 3261 26.3.1, RFC 5630): certificates, keys and TLS contexts.

:func:`load_identity` and :func:`load_ca` read and check PEM files (``ccswitch check``
uses them too); :class:`ServerTls` makes the server side of inbound connections and can
be reloaded (SIGHUP) while connections made with the old certificate live on;
:class:`ClientTls` makes the client side of outbound connections, which verifies the
server certificate against the configured CAs (or the system's) and the host of the
URI (``service_identity``), and shows a vendor's client certificate when one is set.
TLS 1.2 is the oldest version spoken either way.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from ccswitch.errors import CCSwitchError
from ccswitch.model import ClientVerify, TlsConfig, TlsIdentity

__all__ = ["TlsSetupError", "Identity", "load_identity", "load_ca", "ServerTls",
           "ClientTls"]

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class TlsSetupError(CCSwitchError):
    """A certificate, key or CA file cannot be used; ``reason`` says why and ``key``
    which file is at fault (``certificate``, ``key`` or ``ca``)."""

    error_id = "sip.tls"

    def __init__(self, reason: str, key: str = "certificate") -> None:
        self.reason = reason
        self.key = key
        super().__init__(reason)


@attrs.frozen
class Identity:
    """A loaded certificate chain and key, ready for a TLS context."""

    certificate: ssl.PrivateCertificate
    chain: tuple[ssl.Certificate, ...]
    not_after: datetime.datetime


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlsSetupError(f"cannot read {path}: {e.strerror or e}", key) from None


def _certificates(path: Path, key: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(path, key))
    except ValueError:
        raise TlsSetupError(f"{path} holds no PEM certificate", key) from None
    return certs


def load_identity(identity: TlsIdentity) -> Identity:
    """The certificate file (leaf first) and its key; TlsSetupError when unreadable, not
    PEM, or when the key does not belong to the certificate."""
    certs = _certificates(identity.certificate, "certificate")
    key_pem = _read(identity.key, "key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise TlsSetupError(f"{identity.key} holds no unencrypted PEM private key",
                            "key") from None
    leaf = certs[0]
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise TlsSetupError(f"the key {identity.key} does not match the certificate "
                            f"{identity.certificate}", "key")
    leaf_pem = leaf.public_bytes(serialization.Encoding.PEM)
    private = ssl.PrivateCertificate.loadPEM(leaf_pem + key_pem)
    chain = tuple(ssl.Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM))
                  for c in certs[1:])
    return Identity(private, chain, leaf.not_valid_after_utc)


def load_ca(path: Path) -> list[ssl.Certificate]:
    """The CA certificates in a PEM file; TlsSetupError when there are none."""
    return [ssl.Certificate.loadPEM(c.public_bytes(serialization.Encoding.PEM))
            for c in _certificates(path, "ca")]


def _options(identity: Identity | None, *, ca: list[ssl.Certificate] | None,
             verify_client: ClientVerify = ClientVerify.NONE) -> ssl.CertificateOptions:
    mine = {} if identity is None else {
        "privateKey": identity.certificate.privateKey.original,
        "certificate": identity.certificate.original,
        "extraCertChain": [c.original for c in identity.chain]}
    verify = verify_client is not ClientVerify.NONE
    return ssl.CertificateOptions(
        **mine, raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        verify=verify, caCerts=[c.original for c in ca or ()] if verify else None,
        requireCertificate=verify_client is ClientVerify.REQUIRED)


@implementer(IOpenSSLServerConnectionCreator)
class ServerTls:
    """The server side of every inbound TLS connection; :meth:`reload` swaps the
    certificate for connections made from then on."""

    def __init__(self, config: TlsConfig) -> None:
        self._context = self._build(config)

    @staticmethod
    def _build(config: TlsConfig) -> SSL.Context:
        ca = load_ca(config.ca) if config.ca is not None else None
        if config.verify_client is not ClientVerify.NONE and ca is None:
            raise TlsSetupError("verify_client needs sip.tls.ca (the CAs client "
                                "certificates must come from)", "ca")
        context: SSL.Context = _options(load_identity(config.identity), ca=ca,
                                        verify_client=config.verify_client).getContext()
        return context

    def reload(self, config: TlsConfig) -> None:
        """Use ``config``'s files for new connections; TlsSetupError leaves the old."""
        self._context = self._build(config)

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self._context, None)


class ClientTls:
    """Makes the client side of outbound TLS connections."""

    def __init__(self, ca: Path | None) -> None:
        self._trust = ssl.trustRootFromCertificates(load_ca(ca)) if ca is not None \
            else ssl.platformTrust()

    def reload(self, ca: Path | None) -> None:
        """Trust ``ca`` for connections made from now on; TlsSetupError keeps the old."""
        self._trust = ssl.trustRootFromCertificates(load_ca(ca)) if ca is not None \
            else ssl.platformTrust()

    def creator(self, server_name: str,
                identity: Identity | None = None) -> IOpenSSLClientConnectionCreator:
        """For a connection to ``server_name`` (a host name or IP address the server
        certificate must be valid for), showing ``identity`` when set."""
        extra: dict[str, object] = {"raiseMinimumTo": ssl.TLSVersion.TLSv1_2}
        if identity is not None:
            extra["extraCertChain"] = [c.original for c in identity.chain]
        creator: IOpenSSLClientConnectionCreator = ssl.optionsForClientTLS(
            server_name, trustRoot=self._trust,
            clientCertificate=identity.certificate if identity is not None else None,
            extraCertificateOptions=extra)
        return creator

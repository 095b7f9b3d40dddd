"""The HTTP face of ccswitch: ``/metrics`` for Prometheus, ``/healthz``, and the operator
API (``ccswitch.api.http``) under ``/api`` when a token is configured."""

from __future__ import annotations

import json
from typing import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request


class MetricsPage(Resource):
    """Prometheus text exposition of one registry."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # twisted.web is unannotated
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


class HealthPage(Resource):
    """``200 {"status": "ok", ...}`` while every check passes, else 503."""

    isLeaf = True

    def __init__(self, status: Callable[[], Mapping[str, object]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # twisted.web is unannotated
        self._status = status

    def render_GET(self, request: Request) -> bytes:
        body = dict(self._status())
        healthy = body.get("status") == "ok"
        request.setResponseCode(200 if healthy else 503)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


def build_site_root(
    registry: CollectorRegistry, status: Callable[[], Mapping[str, object]],
    api: Resource | None = None,
) -> Resource:
    """The resource tree served on the HTTP port (``/api`` only when given)."""
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    root.putChild(b"healthz", HealthPage(status))
    if api is not None:
        root.putChild(b"api", api)
    return root

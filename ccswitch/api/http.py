"""The operator API under ``/api/v1`` on the HTTP port: agents, queues, live calls,
PCI recording pause and recording downloads, behind one bearer token.

    GET  /api/v1/agents                              agents with state and groups
    POST /api/v1/agents/<id>/{login,logout,pause,ready}
    GET  /api/v1/queues                              depth, group, vendors per queue
    GET  /api/v1/calls                               calls in progress
    POST /api/v1/calls/<id>/recording/{pause,resume}
    GET  /api/v1/recordings/<call id>                the finished recording (logged in an
                                                     access log and the ledger)

A sealed recording (``recordings.encrypt``) is sent as it is on disk
(``application/octet-stream``, ``<id>.wav.enc``) for the reviewers to decrypt with
their key; only when the node is given the private key (``http.recording_key``) is it
decrypted while it is sent, chunk by chunk, never into a file. A chunk that does not
authenticate then cuts the connection (the status line is gone by then) and is logged.

Every request needs ``Authorization: Bearer <token>`` (compared in constant time); a
missing or wrong token gets 401 and a log line with the client address, never the
token. Answers are JSON (``{"error": ..., "id": ...}`` for errors): 404 unknown
agent/call/path, 405 wrong method, 409 an action the agent's or call's state does not
allow.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import File
from zope.interface import implementer

from ccswitch.errors import CCSwitchError, IllegalTransition
from ccswitch.recording.recorder import HEADER_SIZE, sealed_wav
from ccswitch.recording.sealed import SUFFIX as SEALED_SUFFIX, SealedError, Unsealed

log = Logger()

AGENT_ACTIONS = ("login", "logout", "pause", "ready")
RECORDING_ACTIONS = ("pause", "resume")


class NotFound(CCSwitchError):
    """The agent, call or recording asked for does not exist."""

    error_id = "api.not_found"


class Control(Protocol):
    """What the API needs from the node (``ccswitch.api.control.NodeControl``)."""

    def agents(self) -> list[dict[str, Any]]: ...

    def queues(self) -> list[dict[str, Any]]: ...

    def calls(self) -> list[dict[str, Any]]: ...

    def agent_action(self, agent_id: str, action: str) -> dict[str, Any]: ...

    def recording_action(self, call_id: str, action: str) -> dict[str, Any]: ...

    def recording_file(self, call_id: str) -> Path: ...

    def log_download(self, entry: dict[str, Any]) -> None: ...


class ApiResource(Resource):
    """``/api``: one leaf that routes ``v1/...`` paths itself."""

    isLeaf = True

    def __init__(self, control: Control, token: str, *,
                 recording_key: X25519PrivateKey | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # twisted.web is unannotated
        self._control = control
        self._token = token.encode("utf-8")
        self._recording_key = recording_key

    def render(self, request: Request) -> bytes | int:
        client = _client(request)
        if not self._authorised(request):
            log.warn("API: refused {method} {path} from {client}: bad or missing token",
                     method=_text(request.method), path=_text(request.path), client=client)
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="ccswitch"')
            return _json(request, 401, {"error": "a valid bearer token is required",
                                        "id": "api.unauthorized"})
        parts = [p.decode("utf-8", "replace") for p in request.postpath or () if p]
        method = _text(request.method)
        try:
            return self._route(request, method, parts, client)
        except (NotFound, KeyError) as e:
            return _json(request, 404, {"error": _reason(e), "id": "api.not_found"})
        except IllegalTransition as e:
            return _json(request, 409, {"error": str(e), "id": e.error_id})
        except CCSwitchError as e:
            if getattr(e, "error_id", "").startswith("routing.unknown"):
                return _json(request, 404, {"error": str(e), "id": e.error_id})
            return _json(request, 409, {"error": str(e), "id": e.error_id})

    def _authorised(self, request: Request) -> bool:
        header = request.getHeader(b"authorization") or b""
        scheme, _, credential = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credential.strip(), self._token)

    def _route(self, request: Request, method: str, parts: list[str],
               client: str) -> bytes | int:
        c = self._control
        match parts:
            case ["v1", "agents"]:
                return self._get(request, method, lambda: {"agents": c.agents()})
            case ["v1", "queues"]:
                return self._get(request, method, lambda: {"queues": c.queues()})
            case ["v1", "calls"]:
                return self._get(request, method, lambda: {"calls": c.calls()})
            case ["v1", "agents", agent_id, action] if action in AGENT_ACTIONS:
                return self._post(request, method, lambda: c.agent_action(agent_id, action))
            case ["v1", "calls", call_id, "recording", action] if action in RECORDING_ACTIONS:
                return self._post(request, method, lambda: c.recording_action(call_id, action))
            case ["v1", "recordings", call_id]:
                if method != "GET":
                    return _method_not_allowed(request, "GET")
                return self._download(request, call_id, client)
        raise NotFound(f"no such API path: /api/{'/'.join(parts)}")

    def _get(self, request: Request, method: str, body: Any) -> bytes:
        if method != "GET":
            return _method_not_allowed(request, "GET")
        return _json(request, 200, body())

    def _post(self, request: Request, method: str, body: Any) -> bytes:
        if method != "POST":
            return _method_not_allowed(request, "POST")
        return _json(request, 200, body())

    def _download(self, request: Request, call_id: str, client: str) -> int | bytes:
        path = self._control.recording_file(call_id)
        size = path.stat().st_size
        sealed = path.name.endswith(SEALED_SUFFIX)
        key = self._recording_key if sealed else None
        decrypted = key is not None
        if key is not None:
            source = open(path, "rb")
            try:
                opened = Unsealed(key, source)
            except (OSError, SealedError) as e:
                source.close()
                log.error("API: recording {call_id} cannot be decrypted: {error}",
                          call_id=call_id, error=str(e))
                return _json(request, 500, {"error": "the recording cannot be decrypted",
                                            "id": "api.recording_unreadable"})
        self._control.log_download({"call_id": call_id, "client": client, "path": str(path),
                                    "bytes": size, "decrypted": decrypted})
        log.info("API: recording {call_id} downloaded by {client}", call_id=call_id,
                 client=client, audit="recording_download", decrypted=decrypted)
        name = path.name[:-len(SEALED_SUFFIX)] if decrypted else path.name
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="{name}"'.encode("ascii"))
        if decrypted:
            data = max(0, opened.layout.plaintext_bytes - HEADER_SIZE)
            request.setHeader(b"Content-Type", b"audio/wav")
            request.setHeader(b"Content-Length",
                              str(HEADER_SIZE + data - data % 4).encode("ascii"))
            _Decrypting(request, source, sealed_wav(opened.chunks,
                                                    opened.layout.plaintext_bytes), call_id)
            return NOT_DONE_YET
        result: int = File(str(path), defaultType="application/octet-stream" if sealed
                           else "audio/wav").render_GET(request)
        return result


@implementer(IPullProducer)
class _Decrypting:
    """Sends a sealed recording's WAV one chunk per pull, so it never exists whole."""

    def __init__(self, request: Request, source: BinaryIO, pieces: Iterator[bytes],
                 call_id: str) -> None:
        self._request = request
        self._source = source
        self._pieces = pieces
        self._call_id = call_id
        request.registerProducer(self, False)
        request.notifyFinish().addErrback(lambda _: self._close())

    def resumeProducing(self) -> None:
        try:
            piece = next(self._pieces, None)
        except SealedError as e:
            log.error("API: recording {call_id}: download cut: {error}", call_id=self._call_id,
                      error=str(e))
            self._close()
            self._request.unregisterProducer()
            self._request.loseConnection()  # short of Content-Length: the client sees the cut
            return
        if piece is None:
            self._close()
            self._request.unregisterProducer()
            self._request.finish()
            return
        self._request.write(piece)

    def stopProducing(self) -> None:
        self._close()

    def _close(self) -> None:
        self._source.close()


def _json(request: Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


def _method_not_allowed(request: Request, allowed: str) -> bytes:
    request.setHeader(b"Allow", allowed.encode("ascii"))
    return _json(request, 405, {"error": f"use {allowed}", "id": "api.method_not_allowed"})


def _client(request: Request) -> str:
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    return str(host) if host is not None else str(peer)


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _reason(error: Exception) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)



"""Builds a running ccswitch node from a Config on a reactor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
from twisted.internet import task, threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

from ccswitch import __version__
from ccswitch.api.control import NodeControl
from ccswitch.api.http import ApiResource
from ccswitch.cdr.spool import RETRY_INTERVAL, SPOOL_FILE, SpoolingWriter
from ccswitch.cdr.store import CdrStore, JsonLinesSink, describe
from ccswitch.config import check_config, read_token
from ccswitch.errors import CCSwitchError, ConfigError
from ccswitch.media.engine import MediaEngine
from ccswitch.media.prompt import load_prompt
from ccswitch.metrics.http import build_site_root
from ccswitch.metrics.registry import LiveStateCollector, Metrics, OverflowCollector
from ccswitch.model import Config, SamplingRules, StateKind, Transport
from ccswitch.portal.peers import Peers
from ccswitch.portal.users import UserStore
from ccswitch.portal.web import Portal
from ccswitch.qa.flagging import SampleFlagger
from ccswitch.qa.store import QaStore
from ccswitch.recording.finished import FinishedCall
from ccswitch.recording.recovery import recover_incomplete
from ccswitch.recording.sealed import SealedError, load_private_key
from ccswitch.routing.engine import RoutingEngine
from ccswitch.routing.states import VendorHealth
from ccswitch.calls.runtime import CallController
from ccswitch.sip.guard import SourceGuard
from ccswitch.state.presence import PresenceFile
from ccswitch.state.redis_store import RedisStore
from ccswitch.state.sync import SharedState
from ccswitch.sip.connections import StreamTransports
from ccswitch.sip.hop import Hop, default_port
from ccswitch.sip.message import SipURI
from ccswitch.sip.tls import ClientTls, Identity, ServerTls, TlsSetupError, load_identity
from ccswitch.sip.transaction import TransactionLayer
from ccswitch.sip.transport import MessageEdge, SipUdpProtocol

log = Logger()


@attrs.define(kw_only=True, eq=False)
class Node:
    """A started node: what tests and the CLI need to reach or stop it."""

    config: Config
    controller: CallController
    engine: RoutingEngine
    media: MediaEngine
    metrics: Metrics
    sip_port: IListeningPort
    http_port: IListeningPort
    streams: StreamTransports
    cdr_replay: task.LoopingCall
    qa_flagger: SampleFlagger
    stream_ports: dict[Transport, IListeningPort] = attrs.Factory(dict)
    server_tls: ServerTls | None = None
    client_tls: ClientTls | None = None
    portal: Portal | None = None

    @property
    def sip_address(self) -> tuple[str, int]:
        addr = self.sip_port.getHost()
        return (addr.host, addr.port)  # type: ignore[attr-defined]

    def stream_address(self, transport: Transport) -> tuple[str, int]:
        """Where the TCP or TLS listener listens (KeyError when there is none)."""
        addr = self.stream_ports[transport].getHost()
        return (addr.host, addr.port)  # type: ignore[attr-defined]

    @property
    def http_address(self) -> tuple[str, int]:
        addr = self.http_port.getHost()
        return (addr.host, addr.port)  # type: ignore[attr-defined]

    def reload(self, path: Path) -> bool:
        """Load ``path`` again and put it in force; on any error keep the running config.

        Dialplans, trusted networks, the compressed-copy format, the TLS certificate, key
        and CAs (new connections use them; open ones live on) and the connection limits
        change live. Listen addresses, the RTP range, the recordings directory, the CDR files, the state
        store and the portal settings need a restart: a change there is logged and the running value kept.
        """
        result = check_config(path)
        for warning in result.warnings:
            log.warn("reload {path}: {warning}", path=str(path), warning=str(warning))
        new = result.config
        if result.errors or new is None:
            for error in result.errors:
                log.error("reload {path}: {error}", path=str(path), error=str(error))
            return self._reload_failed(path, f"{len(result.errors)} error(s)")
        try:
            preload_prompts(new)
        except (CCSwitchError, OSError) as e:
            log.error("reload {path}: {error}", path=str(path), error=str(e))
            return self._reload_failed(path, str(e))
        old = self.config
        try:
            self._reload_tls(new)
        except TlsSetupError as e:
            log.error("reload {path}: sip.tls: {error}", path=str(path), error=e.reason)
            return self._reload_failed(path, e.reason)
        fixed = {
            "sip.listen": (old.sip.listen_host, old.sip.listen_port, old.sip.listeners) != (
                new.sip.listen_host, new.sip.listen_port, new.sip.listeners),
            "sip.advertised_address": old.sip.advertised_host != new.sip.advertised_host,
            "sip.max_message_size": old.sip.max_message_size != new.sip.max_message_size,
            "sip.user_agent": old.sip.user_agent != new.sip.user_agent,
            "sip.flood": old.sip.flood != new.sip.flood,
            "rtp": old.rtp != new.rtp,
            "http": old.http != new.http,
            "recordings.directory": old.recordings.directory != new.recordings.directory,
            "recordings.encrypt": (old.recordings.public_key_file
                                   != new.recordings.public_key_file),
            "cdr": old.cdr != new.cdr,
            "state": old.state != new.state,
            "portal": old.portal != new.portal,
        }
        for key in (k for k, changed in fixed.items() if changed):
            log.warn("reload {path}: {key} changed; it takes effect only after a restart",
                     path=str(path), key=key)
        config = attrs.evolve(
            new, sip=attrs.evolve(old.sip, trusted=new.sip.trusted,
                                  admission=new.sip.admission, tls=new.sip.tls,
                                  connections=new.sip.connections), rtp=old.rtp,
            http=old.http, cdr=old.cdr, state=old.state, portal=old.portal,
            recordings=attrs.evolve(old.recordings,
                                    compressed_format=new.recordings.compressed_format))
        self.controller.reload(config)
        self.config = config
        self.qa_flagger.rules = sampling_rules(config)
        self.metrics.zero_dialplan_series(config.dialplan)
        self.metrics.config_reloads.labels(result="ok").inc()
        self.metrics.config_reloaded_at.set_to_current_time()
        log.info("reloaded {path}: {queues} queue(s), {agents} agent(s), {routes} route(s)",
                 path=str(path), queues=len(config.dialplan.queues),
                 agents=len(config.dialplan.agents), routes=len(config.dialplan.routes))
        return True

    def _reload_tls(self, new: Config) -> None:
        """Load the new certificates first (TlsSetupError changes nothing), then use them
        for new connections."""
        tls = new.sip.tls
        identities = client_identities(new)
        if tls is not None and self.server_tls is not None:
            self.server_tls.reload(tls)
        if tls is not None and self.client_tls is not None:
            self.client_tls.reload(tls.ca)
        self.streams.client_identities = identities
        self.streams.limits = new.sip.connections
        if tls is not None and self.server_tls is not None:
            log.info("TLS certificate {certificate} in force for new connections",
                     certificate=str(tls.identity.certificate))

    def _reload_failed(self, path: Path, why: str) -> bool:
        self.metrics.config_reloads.labels(result="failed").inc()
        log.error("reload of {path} refused ({why}); the running config stays in force",
                  path=str(path), why=why)
        return False

    def stop(self) -> Deferred[None]:
        """Hang up every call (each gets its record), then close the ports."""
        self.controller.shutdown()
        if self.cdr_replay.running:
            self.cdr_replay.stop()
        if self.portal is not None:
            self.portal.stop()
        self.http_port.stopListening()
        for port in self.stream_ports.values():
            port.stopListening()
        stopped: Deferred[None] = self.media.stop()
        stopped.addBoth(lambda _: self.sip_port.stopListening())
        stopped.addBoth(lambda _: self.streams.close_all(linger=SHUTDOWN_LINGER))
        return stopped


def client_identities(config: Config) -> dict[tuple[str, int], Identity]:
    """The client certificate to show per vendor trunk address (mutual TLS)."""
    out: dict[tuple[str, int], Identity] = {}
    for vendor in config.dialplan.vendors.values():
        if vendor.tls is None:
            continue
        identity = load_identity(vendor.tls)
        for text in vendor.trunks:
            uri = SipURI.parse(text)
            out[uri.host_port(default_port(Transport.TLS))] = identity
    return out


def preload_prompts(config: Config) -> None:
    """Decode every queue prompt once at start-up, so a bad file fails the start."""
    for queue in config.dialplan.queues.values():
        farewell = None if queue.max_wait is None else queue.max_wait.announcement
        for path in (queue.announcement, queue.music_on_hold, farewell):
            if path is not None:
                for codec in ("PCMU", "PCMA"):
                    load_prompt(path, codec)


def sampling_rules(config: Config) -> SamplingRules | None:
    """The QA sampling rules of the dialplan, if it has any."""
    qa = config.dialplan.qa
    return None if qa is None else qa.sampling


def record_writer(config: Config, metrics: Metrics
                  ) -> tuple[Callable[[dict[str, Any]], None], SpoolingWriter]:
    """Store every finished call's record in the CDR database (and JSON lines); the
    writer is called on a worker thread.

    While the database is unreachable records are spooled and replayed later (see
    ``ccswitch.cdr.spool``). A record that cannot be written or spooled is logged with
    the whole record, so it can be replayed by hand (the store is idempotent per call
    id), and counted in ccswitch_cdr_write_errors_total. Raises CdrError when the
    database is reachable but cannot be used (a newer schema, a file that is no
    database): the node does not start on it.
    """
    database = config.cdr.database
    cdr = SpoolingWriter(open_store=lambda: CdrStore(database), name=describe(database),
                         spool=config.cdr.node_directory / SPOOL_FILE, metrics=metrics)
    sinks: list[tuple[str, Callable[[dict[str, Any]], None]]] = [(cdr.name, cdr.add)]
    if config.cdr.jsonl is not None:
        sinks.append((str(config.cdr.jsonl), JsonLinesSink(config.cdr.jsonl).add))

    def write(record: dict[str, Any]) -> None:
        for name, add in sinks:
            try:
                add(record)
            except CCSwitchError as e:
                metrics.cdr_write_errors.inc()
                log.error("call {call_id}: record not written to {path}: {error}; "
                          "record: {record}", call_id=record.get("call_id"),
                          path=name, error=str(e),
                          record=json.dumps(record, sort_keys=True, default=str))

    return write, cdr


def _replay_spooled(cdr: SpoolingWriter) -> Deferred[None]:
    """(LoopingCall, reactor) replay the CDR spool on a worker thread; never fails."""
    d: Deferred[Any] = threads.deferToThread(cdr.replay)
    d.addErrback(lambda failure: log.failure("CDR spool replay failed", failure))
    return d.addCallback(lambda _: None)


#: On stopping, how long TCP/TLS peers get to close their connections after the BYEs
#: before the node closes them itself.
SHUTDOWN_LINGER = 1.0
#: The embedded store's agent presence file, in the node's CDR directory.
PRESENCE_FILE = "agents.json"
#: Call records waiting for an unreachable shared store, in the node's CDR directory.
RECORD_SPOOL_FILE = "record-spool.jsonl"


def _redacted(url: str) -> str:
    """A store URL without its password, for logs."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


def _port(listening: IListeningPort) -> int:
    port: int = listening.getHost().port  # type: ignore[attr-defined]
    return port


def start_node(config: Config, reactor: Any) -> Node:
    """Listen on the SIP and HTTP ports and start the media clock."""
    preload_prompts(config)
    config.recordings.directory.mkdir(parents=True, exist_ok=True)
    metrics = Metrics(short_abandon_thresholds=[
        q.short_abandon for q in config.dialplan.queues.values()])
    metrics.zero_dialplan_series(config.dialplan)
    metrics.state_backend_up.set(1)  # the embedded store lives in this process; shared: below
    metrics.config_reloaded_at.set_to_current_time()
    engine = RoutingEngine(config.dialplan, clock=reactor,
                           recording_start=config.recordings.start,
                           reservations=config.state_kind is StateKind.REDIS)
    media = MediaEngine(reactor, address=config.rtp.address, port_min=config.rtp.port_min,
                        port_max=config.rtp.port_max)
    write_record, cdr = record_writer(config, metrics)
    replay = task.LoopingCall(_replay_spooled, cdr)
    replay.clock = reactor
    replay.start(RETRY_INTERVAL, now=False)
    shared: SharedState | None = None  # set below with a Redis state

    database = config.cdr.database
    flag_sample = SampleFlagger(open_store=lambda: QaStore(database),
                                rules=sampling_rules(config), clock=reactor)

    def store(record: dict[str, Any]) -> None:
        write_record(record)
        flag_sample(record)  # after the CDR row: the decision reads it
        if shared is not None:
            shared.record(record)

    def on_record(finished: FinishedCall) -> None:
        # The CDR row and the stream name the node; the sidecar, written before, does not.
        store(attrs.evolve(finished, node=config.node).to_dict())

    controller = CallController(clock=reactor, config=config, engine=engine, media=media,
                                metrics=metrics, defer_to_thread=threads.deferToThread,
                                on_record=on_record,
                                presence=PresenceFile(
                                    config.cdr.node_directory / PRESENCE_FILE))
    if config.state_kind is StateKind.REDIS:
        shared = SharedState(store=RedisStore.from_url(config.state, node=config.node),
                             engine=engine, feed=controller.submit, reactor=reactor,
                             metrics=metrics, hold_ttl=config.hold_ttl,
                             spool=config.cdr.node_directory / RECORD_SPOOL_FILE)
        controller.share(shared)
        log.info("shared state in {url} as node {node}", url=_redacted(config.state),
                 node=config.node)

    def stored(call_id: str) -> bool:
        try:
            return cdr.get(call_id) is not None
        except CCSwitchError as e:  # unreachable: the record is spooled (an upsert, later)
            log.error("call {call_id}: CDR not readable: {error}", call_id=call_id,
                      error=str(e))
            return False

    recovered_calls = recover_incomplete(config.recordings.directory,
                                         now=reactor.seconds(), stored=stored)
    for recovered in recovered_calls:
        store({**recovered.record, "node": config.node})
    guard = SourceGuard(config.sip.flood, reactor)
    metrics.sip_banned_sources.set_function(lambda: len(guard.banned()))
    edge = MessageEdge(guard=guard,
                       dropped=lambda reason: metrics.sip_dropped.labels(reason=reason).inc(),
                       rejected=lambda status: metrics.sip_rejected.labels(
                           status=str(status)).inc())
    protocol = SipUdpProtocol(max_size=config.sip.max_message_size, edge=edge)
    tls = config.sip.tls
    try:
        server_tls = ServerTls(tls) if tls is not None else None
        client_tls = ClientTls(tls.ca) if tls is not None else None
        identities = client_identities(config)
    except TlsSetupError as e:
        raise ConfigError(str(config.source), f"sip.tls ({e.key})", e.reason) from e
    streams = StreamTransports(reactor=reactor, edge=edge, limits=config.sip.connections,
                               max_message_size=config.sip.max_message_size,
                               server_tls=server_tls, client_tls=client_tls,
                               client_identities=identities)
    sip_port = reactor.listenUDP(config.sip.listen_port, protocol,
                                 interface=config.sip.listen_host)
    port_number = sip_port.getHost().port
    stream_ports: dict[Transport, IListeningPort] = {}
    for listener in config.sip.listeners:
        if listener.transport.reliable:
            stream_ports[listener.transport] = reactor.listenTCP(
                listener.port, streams.server_factory(listener.transport),
                interface=listener.host)

    def send(data: bytes, hop: Hop) -> bool:
        """False when a datagram could not be sent; a stream that cannot connect fails its
        transactions itself, later."""
        if hop.transport is Transport.UDP:
            return protocol.send(data, hop)
        streams.send(data, hop)
        return True

    layer = TransactionLayer(reactor, send, controller,
                             local_via_host=config.sip.advertised_host, local_port=port_number,
                             stream_ports={t: _port(p) for t, p in stream_ports.items()},
                             user_agent=config.sip.user_agent)
    edge.layer = layer
    streams.failed = layer.transport_failed
    controller.attach(layer, port_number)
    metrics.watch(LiveStateCollector(
        lambda: {name: q.depth for name, q in engine.view.queues.items()},
        lambda: engine.view.agent_counts(), lambda: controller.active_calls,
        vendor_states=lambda: {name: (v.in_use, v.max_channels, v.health is VendorHealth.UP)
                               for name, v in engine.view.vendors.items()},
        queue_groups=lambda: {name: q.group for name, q in engine.view.queues.items()}))
    metrics.watch(OverflowCollector(lambda: engine.view))

    def health() -> Mapping[str, object]:
        return {"status": "ok", "version": __version__, "active_calls": controller.active_calls,
                "sip_port": port_number}

    api: ApiResource | None = None
    if config.http.api_token_file is not None:
        control = NodeControl(engine=engine, controller=controller,
                              cdr=cdr,
                              recordings=config.recordings.directory, clock=reactor,
                              defer_to_thread=threads.deferToThread)
        try:
            token = read_token(config.http.api_token_file)
        except ValueError as e:
            raise ConfigError(str(config.source), "http.api_token_file", str(e)) from e
        recording_key = None
        if config.http.recording_key is not None:
            try:
                recording_key = load_private_key(config.http.recording_key.read_bytes())
            except (OSError, SealedError) as e:
                raise ConfigError(str(config.source), "http.recording_key", str(e)) from e
            log.warn("http.recording_key is set: this node can read its sealed recordings "
                     "and decrypts them for API downloads")
        api = ApiResource(control, token, recording_key=recording_key)
    root = build_site_root(metrics.registry, health, api)
    portal: Portal | None = None
    if config.portal is not None:
        peers = None
        if config.portal.peers and config.http.api_token_file is not None:
            peers = Peers(reactor, config.portal.peers, read_token(config.http.api_token_file))
        portal = Portal(config=config.portal, users=UserStore(config.cdr.database, reactor),
                        cdr=CdrStore(config.cdr.database), view=lambda: engine.view,
                        recordings=config.recordings.directory, clock=reactor,
                        reactor=reactor, to_thread=threads.deferToThread,
                        shared=None if shared is None else shared.store, peers=peers)
        root.putChild(b"portal", portal.resource())
        portal.start()
    http_port = reactor.listenTCP(config.http.listen_port, Site(root),
                                  interface=config.http.listen_host)
    media.start()
    node = Node(config=config, controller=controller, engine=engine, media=media,
                metrics=metrics, sip_port=sip_port, http_port=http_port, streams=streams,
                cdr_replay=replay, qa_flagger=flag_sample, stream_ports=stream_ports,
                server_tls=server_tls, client_tls=client_tls, portal=portal)
    log.info("ccswitch {version} listening: SIP udp {sip}{streams}, HTTP {http}, RTP {rtp}",
             version=__version__, sip=node.sip_address, http=node.http_address,
             streams="".join(f", {t.value} {node.stream_address(t)}" for t in stream_ports),
             rtp=f"{config.rtp.address}:{config.rtp.port_min}-{config.rtp.port_max}")
    return node

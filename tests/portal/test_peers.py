"""Reading a peer's waiting callers from its operator API answer."""

from __future__ import annotations

import json

import pytest

from ccswitch.portal.peers import PeerState, waiting_calls
from ccswitch.portal.wallboard import Wallboard
from tests.portal.test_wallboard import view


def test_only_waiting_calls_count() -> None:
    """Queued, ringing, announcing and overflow calls wait; bridged ones do not."""
    body = json.dumps({"calls": [
        {"queue": "sales", "state": "queued", "seconds": 12.5},
        {"queue": "sales", "state": "bridged", "seconds": 99},
        {"queue": "sales", "state": "ringing", "seconds": 3},
    ]}).encode()
    assert waiting_calls(body) == (("sales", 12.5), ("sales", 3.0))


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"calls": 5}', b'{"calls": [1]}'])
def test_an_answer_that_is_not_a_calls_list_is_refused(body: bytes) -> None:
    """Anything but a calls list raises ValueError (the peer then counts as down)."""
    with pytest.raises(ValueError):
        waiting_calls(body)


def test_peer_callers_add_to_the_queue() -> None:
    """A peer's waiting caller adds to the queue's count and can be the longest wait."""
    peers = [PeerState(url="http://b:9060", up=True, waiting=(("sales", 40.0),)),
             PeerState(url="http://c:9060", up=False)]
    out = Wallboard().snapshot(view([]), 100.0, queues_today={}, vendors_today={},
                               abandoned_today={}, peers=peers)
    [queue] = out["queues"]
    assert queue["waiting"] == 1 and queue["longest_wait"] == 40.0
    assert out["peers"] == [{"url": "http://b:9060", "up": True},
                            {"url": "http://c:9060", "up": False}]


def test_peer_callers_of_an_unknown_queue_are_ignored() -> None:
    """A queue this node's dialplan lacks adds nothing (nodes share their dialplans)."""
    peers = [PeerState(url="http://b:9060", up=True, waiting=(("other", 5.0),))]
    out = Wallboard().snapshot(view([]), 1.0, queues_today={}, vendors_today={},
                               abandoned_today={}, peers=peers)
    assert out["queues"][0]["waiting"] == 0

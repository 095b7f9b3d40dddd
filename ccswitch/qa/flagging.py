"""Flagging sampled calls when they end: the node's side of the quality program.

:class:`SampleFlagger` is called on the record-writing worker thread right after a
finished call's record went to the CDR database. It asks the QA store to decide
(:meth:`~ccswitch.qa.store.QaStore.sample_call`) under the rules in force (``rules``
is replaced on a config reload) and logs the outcome. It never raises: a database
that cannot be reached, or a record still spooled by the CDR writer, leaves the call
unflagged, which is logged; ``ccswitch qa sample`` flags such calls later with the
same seeded decision.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from twisted.logger import Logger

from ccswitch.clock import TimeSource
from ccswitch.errors import CCSwitchError
from ccswitch.model import SamplingRules
from ccswitch.qa.store import QaStore

__all__ = ["SampleFlagger"]

log = Logger()


class SampleFlagger:
    """Flags finished calls the sampling rules pick (see the module docstring)."""

    def __init__(self, *, open_store: Callable[[], QaStore], rules: SamplingRules | None,
                 clock: TimeSource) -> None:
        self.rules = rules
        self._open_store = open_store
        self._clock = clock
        self._store: QaStore | None = None
        self._lock = threading.Lock()

    def __call__(self, record: Mapping[str, Any]) -> None:
        """Decide for one finished call's record (already handed to the CDR writer)."""
        rules = self.rules
        call_id = record.get("call_id")
        if rules is None or not isinstance(call_id, str) or not call_id:
            return
        try:
            with self._lock:
                if self._store is None:
                    self._store = self._open_store()
                store = self._store
            decision = store.sample_call(call_id, rules,
                                         now_ms=round(self._clock.seconds() * 1000))
        except CCSwitchError as e:
            log.error("call {call_id}: not sampled for QA: {error}; `ccswitch qa sample` "
                      "can flag it later", call_id=call_id, error=str(e))
            return
        if decision is None:
            log.warn("call {call_id}: not sampled for QA: its record is not in the CDR "
                     "database yet (spooled); `ccswitch qa sample` can flag it later",
                     call_id=call_id)
        elif decision.sampled:
            log.info("call {call_id}: sampled for QA ({reason})", call_id=call_id,
                     reason=decision.reason)


"""Vendors (outsourced groups behind SIP trunks) for the routing engine: health, probes,
channels and trunk failover.

:class:`Vendors` keeps each vendor's health (``VENDOR_TRANSITIONS``), its failures
in a row and the channels in use here. 5xx, 408 and ring timeouts of call attempts
and failed OPTIONS probes count against a vendor; ``failures`` of them in a row
take it out of rotation for its ``cooldown``, after which it is probed (or, with
no probes, back at once). Evidence that the trunks are dead (a probe round none of
them answered, an answered leg whose media died) takes it out at once. A call to a vendor tries its trunks in order on 5xx and
408 while the vendor stays in rotation.
"""

from __future__ import annotations

from typing import Mapping

import attrs

from ccswitch.errors import IllegalTransition
from ccswitch.model import Dialplan, Vendor
from ccswitch.routing import actions as act
from ccswitch.routing import timers as tm
from ccswitch.routing.actions import NoteLevel
from ccswitch.routing.calendar import Calendar
from ccswitch.routing.states import VENDOR_TRANSITIONS, VendorHealth, transition


@attrs.define(kw_only=True, eq=False)
class VendorSlot:
    """One vendor as the engine tracks it."""

    vendor: Vendor
    health: VendorHealth = VendorHealth.UP
    failures: int = 0  # in a row
    in_use: int = 0
    removed: bool = False  # dropped by a reload: forget it once its last call ends


class Vendors:
    """Every vendor of the dialplan in force (and removed ones still finishing calls)."""

    def __init__(self, dialplan: Dialplan) -> None:
        self.slots: dict[str, VendorSlot] = {
            name: VendorSlot(vendor=vendor) for name, vendor in dialplan.vendors.items()}
        self.started = False

    def reload(self, old_plan: Dialplan, dialplan: Dialplan) -> list[act.Action]:
        """New vendors start in rotation (and get probed); changed ones keep their health;
        removed ones finish their calls and are forgotten."""
        actions: list[act.Action] = []
        for name, gone in list(self.slots.items()):
            if name not in dialplan.vendors:
                if gone.in_use:
                    gone.removed = True
                else:
                    del self.slots[name]
        for name, vendor in dialplan.vendors.items():
            existing = self.slots.get(name)
            if existing is None:
                self.slots[name] = VendorSlot(vendor=vendor)
                if self.started:
                    actions.extend(self.probe(name))
                continue
            old = old_plan.vendors.get(name)
            existing.vendor = vendor
            existing.removed = False
            if self.started and old is not None and old.probe_interval != vendor.probe_interval:
                actions.extend(self.probe(name))
        return actions

    def node_started(self) -> list[act.Action]:
        if self.started:
            raise IllegalTransition("node", "started", "NodeStarted")
        self.started = True
        actions: list[act.Action] = []
        for name in self.slots:
            actions.extend(self.probe(name))
        return actions

    def probed(self, vendor: str, ok: bool, answered: bool = True) -> list[act.Action]:
        if vendor not in self.slots:
            return [act.note(NoteLevel.DEBUG, "probe result for unknown vendor {vendor}",
                             vendor=vendor)]
        if not answered:
            return self.lost(vendor, "probe_timeout")
        return self.result(vendor, ok=ok)

    def lost(self, vendor: str, cause: str) -> list[act.Action]:
        """Evidence that the vendor's trunks are dead: out of rotation now, not after
        ``failures`` in a row. Said once: more evidence while it is down changes nothing."""
        slot = self.slots.get(vendor)
        if slot is None or slot.health is VendorHealth.DOWN:
            return []
        return [act.note(NoteLevel.WARN, "vendor {vendor} lost: {cause}", vendor=vendor,
                         cause=cause),
                *self._transition(slot, "lost")]

    # -- channels and trunks ------------------------------------------------------

    def unavailable(self, slot: VendorSlot, now: float,
                    calendars: Mapping[str, Calendar]) -> str | None:
        """Why a vendor cannot take a call now (down, closed, full), or None."""
        if slot.health is not VendorHealth.UP:
            return "down"
        schedule = slot.vendor.schedule
        if schedule is not None:
            calendar = calendars.get(schedule)
            if calendar is not None and not calendar.is_open(now):
                return "closed"
        if slot.in_use >= slot.vendor.max_channels:
            return "full"
        return None

    def release(self, vendor: str) -> bool:
        """A call gave back its channel of ``vendor``; False if the vendor is forgotten."""
        slot = self.slots.get(vendor)
        if slot is None:
            return False
        slot.in_use -= 1
        if slot.removed and slot.in_use == 0:
            del self.slots[vendor]
        return True

    def next_trunk(self, vendor: str, trunk: int) -> VendorSlot | None:
        """The vendor, if it is in rotation and has a trunk after ``trunk`` to fail over to."""
        slot = self.slots.get(vendor)
        if (slot is not None and trunk + 1 < len(slot.vendor.trunks)
                and slot.health is VendorHealth.UP):
            return slot
        return None

    def trunk(self, vendor: str, index: int) -> str:
        """The URI of a vendor's trunk (``?`` for a vendor already forgotten)."""
        slot = self.slots.get(vendor)
        return slot.vendor.trunks[index] if slot is not None else "?"

    # -- health -------------------------------------------------------------------

    def result(self, vendor: str, *, ok: bool) -> list[act.Action]:
        """Count a call attempt's or probe's result towards the vendor's health."""
        slot = self.slots.get(vendor)
        if slot is None:
            return []
        if ok:
            slot.failures = 0
            trigger = "success"
        else:
            slot.failures += 1
            trigger = "failure_limit" if slot.failures >= slot.vendor.failures else "failure"
        return self._transition(slot, trigger)

    def _transition(self, slot: VendorSlot, trigger: str) -> list[act.Action]:
        old = slot.health
        name = slot.vendor.name
        slot.health = transition(f"vendor {name}", VENDOR_TRANSITIONS, old, trigger)
        if slot.health is old:
            return []
        actions: list[act.Action] = [act.VendorHealthChanged(vendor=name, old=old,
                                                             new=slot.health)]
        slot.failures = 0
        if slot.health is VendorHealth.DOWN:
            actions.append(act.note(NoteLevel.WARN,
                                    "vendor {vendor} out of rotation for {cooldown}s",
                                    vendor=name, cooldown=slot.vendor.cooldown))
            actions.append(act.StartTimer(timer_id=tm.CooldownTimer(name),
                                          delay=slot.vendor.cooldown))
        elif slot.health is VendorHealth.PROBING:
            actions.append(act.ProbeVendor(vendor=name, uris=slot.vendor.trunks,
                                           timeout=slot.vendor.probe_timeout))
        else:
            actions.append(act.note(NoteLevel.INFO, "vendor {vendor} back in rotation",
                                    vendor=name))
        return actions

    def cooldown_over(self, vendor: str) -> list[act.Action]:
        slot = self.slots.get(vendor)
        if slot is None or slot.health is not VendorHealth.DOWN:
            return []
        probes = slot.vendor.probe_interval > 0
        return self._transition(slot, "cooldown_over" if probes else "cooldown_over_no_probes")

    def probe(self, vendor: str) -> list[act.Action]:
        """Probe a vendor's trunks now and again after its probe_interval."""
        slot = self.slots.get(vendor)
        if slot is None or slot.removed or slot.vendor.probe_interval <= 0:
            return []
        return [act.ProbeVendor(vendor=vendor, uris=slot.vendor.trunks,
                                timeout=slot.vendor.probe_timeout),
                act.StartTimer(timer_id=tm.ProbeTimer(vendor), delay=slot.vendor.probe_interval)]

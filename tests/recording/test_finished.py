"""FinishedCall.to_dict: the engine's record plus the runtime's facts, as the edges store them."""

from __future__ import annotations

from ccswitch.recording.finished import FinishedCall, RecordingFacts
from ccswitch.routing.record import CallRecord, Outcome

T0 = 1_700_000_000.0
RECORD = CallRecord(call_id="c1", caller="1001", dialed="100", queue="support", group="team",
                    arrived_at=T0, short_abandon_threshold=5.0, outcome=Outcome.REJECTED,
                    ended_at=T0)


def test_rejected_call_has_the_record_and_sip_call_id_only() -> None:
    """A call rejected before set-up adds only its SIP Call-ID to the engine's record."""
    out = FinishedCall(record=RECORD, sip_call_id="abc@pbx").to_dict()
    assert out == {**RECORD.to_dict(), "sip_call_id": "abc@pbx"}


def test_recorded_call_carries_start_pauses_path_and_error() -> None:
    """A recorded call adds the start (epoch and ISO), its pauses, path and error."""
    facts = RecordingFacts(started_at=T0 + 4.0001, pauses=((T0 + 10, T0 + 20),),
                           path="/rec/c1.wav", error="disk full")
    out = FinishedCall(record=RECORD, sip_call_id="abc@pbx", recording=facts).to_dict()
    assert out["recording_started_at"] == T0 + 4.0
    assert out["recording_started_at_iso"] == "2023-11-14T22:13:24.000Z"
    assert out["recording_pauses"] == [{"from": T0 + 10, "to": T0 + 20}]
    assert (out["recording_path"], out["recording_error"]) == ("/rec/c1.wav", "disk full")


def test_call_never_recorded_says_so_without_empty_extras() -> None:
    """A call whose recording never started has a null start and no pauses, path or error."""
    out = FinishedCall(record=RECORD, sip_call_id="x", recording=RecordingFacts()).to_dict()
    assert out["recording_started_at"] is None
    assert not {"recording_pauses", "recording_path", "recording_error"} & set(out)


def test_node_is_named_only_when_known() -> None:
    """The node appears once the service names it (the CDR row and stream, not the sidecar)."""
    assert "node" not in FinishedCall(record=RECORD, sip_call_id="x").to_dict()
    assert FinishedCall(record=RECORD, sip_call_id="x", node="n1").to_dict()["node"] == "n1"

"""CallAdmission and the trust check, driven by twisted.internet.task.Clock."""

from __future__ import annotations

import ipaddress

from twisted.internet.task import Clock

from ccswitch.calls.admission import CallAdmission, Refusal, is_trusted
from ccswitch.model import AdmissionConfig

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def test_source_in_a_trusted_network_is_trusted() -> None:
    """An INVITE from an address inside a trusted network may start a call."""
    assert is_trusted("10.1.2.3", TRUSTED) and is_trusted("fd00::1", TRUSTED)


def test_source_outside_the_trusted_networks_is_not_trusted() -> None:
    """An address outside every trusted network may not start a call."""
    assert not is_trusted("192.0.2.1", TRUSTED)


def test_source_that_is_no_address_is_not_trusted() -> None:
    """A source that is not an IP address is never trusted."""
    assert not is_trusted("phone.example", TRUSTED)


def test_no_limits_admits_everything() -> None:
    """Without limits every call is admitted."""
    admission = CallAdmission(AdmissionConfig(), Clock())
    assert all(admission.admit(10_000) is None for _ in range(1000))


def test_concurrent_limit_refuses_with_retry_after() -> None:
    """At max_calls active calls a new call gets 503 (call limit) with Retry-After."""
    admission = CallAdmission(AdmissionConfig(max_calls=10, retry_after=7), Clock())
    assert admission.admit(10) == Refusal(
        status=503, reason="Service Unavailable (call limit)", retry_after=7, limit="calls")


def test_below_concurrent_limit_admitted() -> None:
    """One call below max_calls is admitted."""
    admission = CallAdmission(AdmissionConfig(max_calls=10), Clock())
    assert admission.admit(9) is None


def test_zero_max_calls_drains_the_node() -> None:
    """max_calls=0 refuses every new call."""
    admission = CallAdmission(AdmissionConfig(max_calls=0), Clock())
    assert admission.admit(0) is not None


def test_call_rate_limit_refuses_with_retry_after() -> None:
    """Beyond the rate burst a call gets 503 (call rate limit) with Retry-After."""
    admission = CallAdmission(AdmissionConfig(max_call_rate=2.0, retry_after=3), Clock())
    assert [admission.admit(0) for _ in range(2)] == [None, None]
    assert admission.admit(0) == Refusal(
        status=503, reason="Service Unavailable (call rate limit)", retry_after=3,
        limit="rate")


def test_call_rate_refills() -> None:
    """At 2 calls/s, half a second after the burst one more call is admitted."""
    clock = Clock()
    admission = CallAdmission(AdmissionConfig(max_call_rate=2.0), clock)
    admission.admit(0)
    admission.admit(0)
    clock.advance(0.5)
    assert admission.admit(0) is None
    assert admission.admit(0) is not None


def test_call_rate_below_one_has_burst_one() -> None:
    """A rate under 1/s still admits one call at once, then one per 1/rate seconds."""
    clock = Clock()
    admission = CallAdmission(AdmissionConfig(max_call_rate=0.5), clock)
    assert [admission.admit(0) is None for _ in range(2)] == [True, False]
    clock.advance(2.0)
    assert admission.admit(0) is None


def test_calls_refused_for_concurrency_spend_no_rate_token() -> None:
    """Calls refused for the concurrent limit leave the rate bucket untouched."""
    admission = CallAdmission(AdmissionConfig(max_calls=5, max_call_rate=1.0), Clock())
    for _ in range(100):
        assert admission.admit(5) is not None
    assert admission.admit(4) is None


def test_calls_refused_for_rate_do_not_push_the_bucket_negative() -> None:
    """Refused calls do not delay recovery: one 1/rate interval later a call is admitted."""
    clock = Clock()
    admission = CallAdmission(AdmissionConfig(max_call_rate=1.0), clock)
    admission.admit(0)
    for _ in range(100):
        admission.admit(0)
    clock.advance(1.0)
    assert admission.admit(0) is None

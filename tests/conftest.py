"""Generic fixtures for tests that use real SIP peers.

Nothing here runs unless a test asks for it: unit tests pay only for importing
``tests.phones.client`` (standard library only).

- ``phone_factory``: ``phone_factory("--role", "agent", ...) -> Phone`` starts a
  pjsua2 test phone (tests/phones/pjphone.py) and stops it at teardown.
- ``sipp_factory``: ``sipp_factory("uas_answer.xml", "-p", ...) -> Sipp`` runs a
  scenario from tests/data/sipp in a per-test directory; stopped at teardown.
- ``tmp_recordings``: an empty per-test directory for WAV recordings.

End-to-end tests are marked ``@pytest.mark.e2e`` (declared in setup.cfg).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.phones.client import PhoneFactory, SippFactory


@pytest.fixture
def phone_factory() -> Iterator[PhoneFactory]:
    """Start pjsua2 test phones; every one is stopped when the test ends."""
    factory = PhoneFactory()
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def sipp_factory(tmp_path: Path) -> Iterator[SippFactory]:
    """Run SIPp scenarios (cwd: a per-test dir); any still running is stopped at the end."""
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    factory = SippFactory(workdir)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def tmp_recordings(tmp_path: Path) -> Path:
    """An empty directory for recordings made during the test."""
    path = tmp_path / "recordings"
    path.mkdir()
    return path

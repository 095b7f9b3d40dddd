"""Helpers for the deploy tests: the real tools (which may be missing) and systemd units.

A missing tool skips its tests with the reason, unless CCSWITCH_REQUIRE_TOOLS is set (make
test), when it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REQUIRED = bool(os.environ.get("CCSWITCH_REQUIRE_TOOLS"))


def find(tool: str) -> str | None:
    """The tool's path; logrotate and friends live in /usr/sbin, not on a user's PATH."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(find(tool) is None and not REQUIRED,
                              reason=f"{tool} is not installed here")


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = find(tool)
    assert path is not None, f"{tool} is required here but not installed"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60)


def unit_settings(unit: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value, in order (systemd keys may repeat, unlike INI)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections

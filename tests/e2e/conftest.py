"""Fixtures for end-to-end tests: real ccswitch processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.node import Node, NodeFactory


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    """Start ccswitch processes; each is stopped (SIGTERM) when the test ends."""
    nodes: list[Node] = []

    def start(plan: dict[str, Any], **kwargs: Any) -> Node:
        node = Node(tmp_path / f"node{len(nodes)}", plan, **kwargs)
        nodes.append(node)
        return node

    try:
        yield start
    finally:
        for node in nodes:
            node.stop()

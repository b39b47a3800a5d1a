from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from collections.abc import Iterator

import pytest
from notify_support import Receiver, running_receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A local ERP endpoint (real HTTP) per test module."""
    with running_receiver() as r:
        yield r

"""pytest plugin (registered by sessionkit's entry point): the ``fake_clock`` fixture.

The conformance classes in ``sessionkit.testing`` carry their own fixtures, so importing
them into a test module is all a store author needs.
"""

from __future__ import annotations

import pytest

from sessionkit.testing.clock import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only with ``fake_clock.advance(seconds)``."""
    return FakeClock()

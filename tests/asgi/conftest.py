from __future__ import annotations

import pytest


@pytest.fixture(scope="module", params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Starlette and FastAPI run on asyncio and on trio: so does every ASGI test."""
    return str(request.param)

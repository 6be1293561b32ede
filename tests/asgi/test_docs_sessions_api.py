"""The Starlette and FastAPI examples of docs/sessions-api.md run, and do what the page
says (the docs test only syntax-checks adapter examples)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.asgi.apps import KEY, client

pytestmark = pytest.mark.anyio
PAGE = Path(__file__).resolve().parents[2] / "docs" / "sessions-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
SAME = {"Sec-Fetch-Site": "same-origin"}


def app_of(marker: str) -> Any:
    (code,) = [block for block in BLOCKS if marker in block]
    namespace: dict[str, Any] = {"SECRET_KEY": KEY, "__name__": "docs_sessions_api"}
    exec(compile(code, f"sessions-api.md ({marker})", "exec"), namespace)  # noqa: S102
    return namespace["app"]


@pytest.mark.parametrize("marker", ["Starlette(", "FastAPI()"])
async def test_the_example_revokes_the_other_device(marker: str) -> None:
    app = app_of(marker)
    async with client(app) as phone, client(app) as laptop:
        for http in (phone, laptop):
            assert (await http.post("/login", params={"user": "alice"})).status_code == 200
        rows = (await laptop.get("/sessions/")).json()["sessions"]
        other = next(r["handle"] for r in rows if not r["current"])
        revoked = await laptop.delete(f"/sessions/{other}", headers=SAME)
        assert revoked.json() == {"revoked": 1, "current": False}
        assert (await phone.get("/sessions/")).status_code == 401  # logged out
        assert (await laptop.get("/sessions/users/alice")).status_code == 403  # not admin

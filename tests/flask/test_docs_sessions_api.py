"""The Flask example of docs/sessions-api.md runs, and does what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.flask.conftest import new_key

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sessions-api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
SAME = {"Sec-Fetch-Site": "same-origin"}


def test_the_example_lists_revokes_and_checks_staff() -> None:
    (code,) = [block for block in BLOCKS if "sessions_blueprint(" in block]
    namespace: dict[str, Any] = {"SECRET_KEY": new_key(), "__name__": "docs_sessions_api"}
    exec(compile(code, "sessions-api.md (Flask)", "exec"), namespace)  # noqa: S102
    app = namespace["app"]
    phone, laptop, admin = app.test_client(), app.test_client(), app.test_client()
    for client, user in ((phone, "alice"), (laptop, "alice"), (admin, "admin")):
        assert client.post(f"/login/{user}").status_code == 200
    rows = laptop.get("/sessions/").json["sessions"]
    other = next(r["handle"] for r in rows if not r["current"])
    assert laptop.delete(f"/sessions/{other}", headers=SAME).json["revoked"] == 1
    assert phone.get("/sessions/").status_code == 401
    assert laptop.get("/sessions/users/alice").status_code == 403
    assert len(admin.get("/sessions/users/alice").json["sessions"]) == 1

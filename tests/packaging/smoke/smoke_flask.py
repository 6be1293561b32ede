"""``sessionkit[flask]``: a Flask app with ``SessionKit(app)``, real WSGI requests that
write the session and read it back, on the default encrypted cookie and on a server-side
store, and the ``flask sessionkit`` commands (click comes with Flask)."""

from __future__ import annotations

from typing import Any

from smokelib import KEY, TMP, Jar, main, read_back, wsgi_request


def app_on(store: str | None) -> Any:
    from flask import Flask, session
    from sessionkit_flask import SessionKit

    app = Flask(__name__)
    app.config["SECRET_KEY"] = KEY
    if store is not None:
        app.config["SESSIONKIT_STORE"] = store
    SessionKit(app)

    @app.get("/")
    def count() -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    return app


def check() -> None:
    for store in (None, f"file://{TMP / 'sessions'}"):
        app = app_on(store)
        jar = Jar("session")
        seen = [jar.keep(wsgi_request(app, "/", jar.cookie)) for _ in range(3)]
        read_back(seen, [b"1", b"2", b"3"])
    runner = app.test_cli_runner()
    for args in (["sessionkit", "keygen"], ["sessionkit", "stats"], ["sessionkit", "gc"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output, result.exception)
    assert runner.invoke(args=["sessionkit", "stats"]).output.startswith("1 session")


if __name__ == "__main__":
    main(check)

"""A minimal runnable demo of the sessionkit core on plain WSGI (no framework).

``make demo`` serves it on http://127.0.0.1:8000 with the in-process memory store: a visit
counter, a login that rotates the session ID, flash messages and a logout that kills the
old cookie. The framework examples replace it when their adapters land.
"""

from __future__ import annotations

import html
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server

from sessionkit import ClientInfo, SessionConfig, SessionEngine

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>sessionkit demo</title>
<style>body{{font:16px system-ui;max-width:38em;margin:3em auto;color:#222}}
.flash{{background:#e8f5e9;padding:.6em 1em;border-radius:6px}} code{{background:#eee}}
a{{margin-right:1em}}</style></head><body>
<h1>sessionkit demo</h1>{flash}
<p>Signed in as: <b>{user}</b></p>
<p>Visits in this session: <b>{visits}</b></p>
<p>Session expires: <code>{expires}</code> &middot; handle <code>{handle}</code></p>
<p><a href="/">reload</a><a href="/login">sign in as demo</a><a href="/logout">sign out</a></p>
</body></html>"""


def make_app(engine: SessionEngine) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        client = ClientInfo(
            remote_addr=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
            secure=environ.get("wsgi.url_scheme") == "https",
        )
        session = engine.open(environ.get("HTTP_COOKIE"), client)
        path = environ.get("PATH_INFO", "/")
        status, headers, body = "200 OK", [("Content-Type", "text/html; charset=utf-8")], b""
        if path == "/login":
            name = parse_qs(environ.get("QUERY_STRING", "")).get("user", ["demo"])[0]
            session.bind_user(name)  # a login: new ID, the old one dies
            session.flash("message", f"Signed in as {name}; your session ID was rotated.")
            status, headers = "303 See Other", [("Location", "/")]
        elif path == "/logout":
            session.invalidate()
            session.flash("message", "Signed out; the old cookie no longer works.")
            status, headers = "303 See Other", [("Location", "/")]
        elif path == "/":
            session["visits"] = session.get("visits", 0) + 1
            message = session.get("message")
            body = PAGE.format(
                flash=f'<p class="flash">{html.escape(message)}</p>' if message else "",
                user=html.escape(session.user_id or "nobody"),
                visits=session["visits"],
                expires=session.expires or "at the end of this request",
                handle=session.handle or "new",
            ).encode()
        else:
            status, body = "404 Not Found", b"not found"
        plan = engine.commit(session, int(status[:3]))
        engine.run(plan)
        start_response(status, headers + plan.headers())
        return [body]

    return app


def main() -> None:
    secret = os.environ.get("SESSIONKIT_SECRET_KEY") or secrets.token_urlsafe(48)
    engine = SessionEngine(SessionConfig(secret_key=secret, store="memory://"))
    port = int(os.environ.get("PORT", "8000"))
    with make_server("127.0.0.1", port, make_app(engine)) as server:
        print(f"sessionkit demo on http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("bye", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The sessions dashboard on FastAPI with ``sessionkit_asgi.SessionMiddleware``.

The page lists the user's sessions; its buttons call the sessions API mounted at
``/api/sessions/`` (``sessions_router``) from the browser (``static/devices.js``), and
fall back to the plain form posts below when JavaScript does not run.

``uvicorn --factory example_projects.fastapi_dashboard.app:create_app``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from sessionkit_asgi import SessionDep, SessionMiddleware, get_engine, sessions_router
from starlette.types import ASGIApp, Receive, Scope, Send

from example_projects.shared import activity, config, devices, panel
from sessionkit import SessionInfo

NOTICE = "notice"  # the flash key of this app's one-line messages
API = "/api/sessions"  # where the sessions API is mounted (static/devices.js calls it)


class ActivityScope:
    """Outermost ASGI middleware: collect sessionkit's events per request (``activity``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with activity.request_scope():
            await self.app(scope, receive, send)


def create_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=config.secret_key(),
        session_cookie=config.COOKIE_NAME,
        max_age=int(config.IDLE_TIMEOUT),
        store=config.store_url(),
        absolute_timeout=config.ABSOLUTE_TIMEOUT,
        exclude_paths=["/static"],
        on_event=activity.record,
    )
    app.add_middleware(ActivityScope)
    app.mount("/static", StaticFiles(directory=config.STATIC), name="static")
    app.include_router(sessions_router(), prefix=API)  # no staff routes in this demo
    templates = Jinja2Templates(
        env=Environment(
            loader=FileSystemLoader(
                [str(config.PACKAGE / "fastapi_dashboard" / "templates"), str(config.TEMPLATES)]
            ),
            autoescape=True,
        )
    )

    @app.get("/", response_class=HTMLResponse)
    async def dashboard(request: Request, session: SessionDep) -> HTMLResponse:
        user = session.user_id  # the framework-neutral user key, whoever signed in
        rows: list[dict[str, Any]] = []
        if user:
            devices.remember(session.handle, _peer(request))
            store = get_engine(request).store
            infos = sorted(
                await store.auser_sessions(user), key=lambda i: i.last_seen, reverse=True
            )
            known = devices.lookup(info.handle for info in infos)
            rows = [_row(info, known, session.handle) for info in infos]
        notice = session.get(NOTICE)
        info = panel.build(
            "dashboard", user=user, handle=session.handle, stored=not session.new,
            expires=session.expires, flashed=[NOTICE] if notice else [],
        )  # fmt: skip
        signin = f"{config.url_of('shop')}login/?next={quote(str(request.url))}"
        return templates.TemplateResponse(
            request,
            "dashboard/index.html",
            {
                "title": "Your active sessions",
                "panel": info,
                "messages": [tuple(notice)] if notice else [],
                "rows": rows,
                "signin": signin,
            },
        )

    @app.post("/revoke/{handle}")
    async def revoke(request: Request, session: SessionDep, handle: str) -> Any:
        user = session.user_id
        if not user:
            return _back()
        if handle == session.handle:
            session.flash(NOTICE, ["warning", "That is this session: use Sign out instead."])
        elif await get_engine(request).store.arevoke_handle(user, handle):
            session.flash(NOTICE, ["success", f"Session {handle} was signed out."])
        else:
            session.flash(NOTICE, ["warning", f"Session {handle} had already ended."])
        return _back()

    @app.post("/revoke-others")
    async def revoke_others(request: Request, session: SessionDep) -> Any:
        user = session.user_id
        if not user:
            return _back()
        store = get_engine(request).store
        # By handle, because the public API names this session only by its handle (the
        # store's revoke_user(keep=...) wants the digest, which the ASGI adapter keeps).
        count = 0
        for info in await store.auser_sessions(user):
            if info.handle != session.handle and await store.arevoke_handle(user, info.handle):
                count += 1
        session.flash(NOTICE, ["success", f"Signed out {count} other session(s)."])
        return _back()

    @app.post("/logout")
    async def logout(session: SessionDep) -> Any:
        session.invalidate()  # deleted in the store: the cookie is dead in all three apps
        session.flash(NOTICE, ["info", "Signed out of all three apps in this browser."])
        return _back()

    return app


def _back() -> RedirectResponse:
    return RedirectResponse("/", status_code=303)


def _peer(request: Request) -> str | None:
    return request.client.host if request.client else None


def _row(info: SessionInfo, known: dict[str, str], current: str | None) -> dict[str, Any]:
    return {
        "handle": info.handle,
        "device": info.device or "Unknown device",  # the core's label, from the User-Agent
        "place": known.get(info.handle, "unknown network"),
        "created": _when(info.created),
        "last_seen": _when(info.last_seen),
        "current": info.handle == current,
    }


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

"""FastAPI: the typed ``Session`` for a view, plain, locked or fresh, and the sessions API as an
``APIRouter`` (``sessions_router``).

from sessionkit_asgi import SessionDep, LockedSession

@app.post("/cart")
async def add(item: str, session: SessionDep) -> dict[str, int]: ...
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from sessionkit import Session
from sessionkit_asgi.access import get_session
from sessionkit_asgi.freshness import fresh_session
from sessionkit_asgi.locking import locked_session
from sessionkit_asgi.sessions_api import StaffCheck, answer, nobody, to_response

#: The request's session, loaded by the middleware.
SessionDep = Annotated[Session, Depends(get_session)]
#: The session under its lock (30 s TTL, 10 s wait, then the core's lock-timeout answer:
#: 503); for other settings use ``Annotated[Session, Depends(locked_session(wait=...))]``.
LockedSession = Annotated[Session, Depends(locked_session())]
#: The session as the store holds it now, read past the local cache (``fresh_session``).
FreshSession = Annotated[Session, Depends(fresh_session)]


# -- the sessions API as an APIRouter, typed so the OpenAPI schema documents it ------------
class SessionRow(BaseModel):
    handle: str = Field(description="Opaque name of the session; never its ID")
    device: str | None = Field(description='Coarse label, e.g. "Firefox on Linux"')
    created: datetime
    last_seen: datetime
    current: bool = Field(description="The session this request runs on")


class SessionList(BaseModel):
    user: str
    sessions: list[SessionRow]


class Revoked(BaseModel):
    revoked: int
    current: bool = Field(False, description="This request's own session was revoked")


class ExtendRequest(BaseModel):
    seconds: float = Field(gt=0, description="Idle timeout from now on (capped)")


class Extended(BaseModel):
    seconds: float = Field(description="The idle timeout granted")
    expires: datetime = Field(description="When the session dies if left alone")


class ApiError(BaseModel):
    error: str
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ApiError, "description": text}
    for status, text in [
        (400, "Bad JSON"), (401, "Not signed in"), (403, "Cross-site call or not staff"),
        (404, "No such session of that user"), (501, "The store keeps no per-user index"),
    ]
}  # fmt: skip
_EXTEND_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ExtendRequest.model_json_schema()}},
    }
}


def sessions_router(*, staff: StaffCheck = nobody) -> APIRouter:
    """``app.include_router(sessions_router(staff=is_admin), prefix="/sessions")``: the
    sessions API with typed responses. The JSON body of ``/extend`` is read by the core,
    so bad input is a 400 here as in the other frameworks (not FastAPI's 422)."""
    router = APIRouter(tags=["sessions"], responses=_ERRORS)

    async def run(request: Request, path: str) -> Response:
        return to_response(await answer(request, path, staff=staff), request.method)

    @router.get("/", response_model=SessionList, summary="My sessions")
    async def mine(request: Request) -> Response:
        return await run(request, "/")

    @router.post("/revoke-others", response_model=Revoked, summary="Log out my other sessions")
    async def revoke_others(request: Request) -> Response:
        return await run(request, "/revoke-others")

    @router.post("/extend", response_model=Extended, openapi_extra=_EXTEND_BODY,
                 summary="Extend this session")  # fmt: skip
    async def extend(request: Request) -> Response:
        return await run(request, "/extend")

    @router.delete("/{handle}", response_model=Revoked, summary="Log out one of my sessions")
    async def revoke(request: Request, handle: str) -> Response:
        return await run(request, f"/{handle}")

    @router.get("/users/{user}", response_model=SessionList, summary="Staff: a user's sessions")
    async def user_list(request: Request, user: str) -> Response:
        return await run(request, f"/users/{user}")

    @router.delete("/users/{user}/{handle}", response_model=Revoked,
                   summary="Staff: log out one of a user's sessions")  # fmt: skip
    async def user_revoke(request: Request, user: str, handle: str) -> Response:
        return await run(request, f"/users/{user}/{handle}")

    @router.post("/users/{user}/revoke-all", response_model=Revoked,
                 summary="Staff: log out all of a user's sessions")  # fmt: skip
    async def user_revoke_all(request: Request, user: str) -> Response:
        return await run(request, f"/users/{user}/revoke-all")

    return router

"""FastAPI dependencies: the typed ``Session`` for a view, plain or locked.

from sessionkit_asgi import SessionDep, LockedSession

@app.post("/cart")
async def add(item: str, session: SessionDep) -> dict[str, int]: ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from sessionkit import Session
from sessionkit_asgi.access import get_session
from sessionkit_asgi.locking import locked_session

#: The request's session, loaded by the middleware.
SessionDep = Annotated[Session, Depends(get_session)]
#: The session under its lock (30 s TTL, 10 s wait, then the core's lock-timeout answer:
#: 503); for other settings use ``Annotated[Session, Depends(locked_session(wait=...))]``.
LockedSession = Annotated[Session, Depends(locked_session())]

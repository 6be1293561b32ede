"""Running the engine's store I/O on whatever event loop the ASGI server runs.

Starlette and FastAPI run on asyncio or trio (through anyio). The stores' async clients
(redis.asyncio, SQLAlchemy's asyncio engine) speak asyncio only, so where no asyncio loop is
running (trio) the engine's *sync* executor runs in a worker thread instead: the same plan,
the same decisions, another executor. Lock waits get their own thread limiter, so requests
queueing for a lock can never take every thread from the holder that must load and save.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread

from sessionkit import CommitPlan, Session, SessionEngine, Store

_LOCK_WAITS = anyio.CapacityLimiter(64)


def asyncio_running() -> bool:
    """Whether asyncio clients can run here (asyncio, or trio-asyncio); not under trio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def in_event_loop() -> bool:
    """Whether this code runs inside an event loop (asyncio or trio): Starlette building
    its middleware on its first call rather than at import."""
    if asyncio_running():
        return True
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def aload(engine: SessionEngine, session: Session) -> None:
    if asyncio_running():
        await engine.aload(session)
    elif session.loaded:
        return
    elif engine.store.client_side:  # the cookie store: nothing to wait for
        engine.load(session)
    else:
        await anyio.to_thread.run_sync(engine.load, session)


async def arun(engine: SessionEngine, plan: CommitPlan) -> bool:
    if not plan.has_io:
        return engine.run(plan)  # no I/O: only emits the plan's events
    if asyncio_running():
        return await engine.arun(plan)
    return await anyio.to_thread.run_sync(engine.run, plan)


@contextlib.asynccontextmanager
async def alock(
    engine: SessionEngine, session: Session, *, ttl: float, wait: float
) -> AsyncIterator[None]:
    if asyncio_running():
        async with engine.alock(session, ttl=ttl, wait=wait):
            yield
        return
    lock = engine.lock(session, ttl=ttl, wait=wait)
    await anyio.to_thread.run_sync(lock.__enter__, limiter=_LOCK_WAITS)
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(lock.__exit__, None, None, None)


async def aclose(store: Store) -> None:
    if asyncio_running():
        await store.aclose()
    else:
        await anyio.to_thread.run_sync(store.close)

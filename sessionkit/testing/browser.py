"""A browser without a browser: drives request cycles through an engine, sync or async.

It keeps the cookie jar the way a browser does (Set-Cookie with Max-Age=0 deletes), so tests
read as a user's visits: ``browser.visit(lambda s: s.__setitem__("a", 1))``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sessionkit.client import ClientInfo
from sessionkit.engine import CommitPlan, SessionEngine
from sessionkit.session import Session

Flavour = Literal["sync", "async"]
DEFAULT_CLIENT = ClientInfo(
    remote_addr="203.0.113.7",
    user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
)


@dataclass
class Visit:
    """What one request produced."""

    result: Any
    plan: CommitPlan
    saved: bool
    session: Session

    @property
    def set_cookie(self) -> str | None:
        return self.plan.set_cookie


class Browser:
    """One browser (one cookie jar) talking to one engine."""

    def __init__(
        self,
        engine: SessionEngine,
        flavour: Flavour = "sync",
        *,
        client: ClientInfo = DEFAULT_CLIENT,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.engine = engine
        self.flavour = flavour
        self.client = client
        self.cookie: str | None = None  # the value only
        self._loop = loop

    @property
    def cookie_header(self) -> str | None:
        if self.cookie is None:
            return None
        return f"{self.engine.config.cookie_name}={self.cookie}"

    def fork(self, *, client: ClientInfo | None = None) -> Browser:
        """A second tab (or a thief): same cookie, own future."""
        twin = Browser(self.engine, self.flavour, client=client or self.client, loop=self._loop)
        twin.cookie = self.cookie
        return twin

    def visit(self, view: Callable[[Session], Any] | None = None, *, status: int = 200) -> Visit:
        """One request: open, run ``view``, commit, run the plan, keep the cookie."""
        if self.flavour == "async":
            return self.loop.run_until_complete(self.avisit(view, status=status))
        session = self.engine.open(self.cookie_header, self.client)
        result = view(session) if view is not None else None
        plan = self.engine.commit(session, status)
        saved = self.engine.run(plan)
        self._keep(plan)
        return Visit(result, plan, saved, session)

    async def avisit(
        self, view: Callable[[Session], Any] | None = None, *, status: int = 200
    ) -> Visit:
        session = self.engine.open(self.cookie_header, self.client)
        await self.engine.aload(session)
        result = view(session) if view is not None else None
        plan = self.engine.commit(session, status)
        saved = await self.engine.arun(plan)
        self._keep(plan)
        return Visit(result, plan, saved, session)

    def begin(self) -> Session:
        """Open (and load) a request's session without finishing it, for races."""
        session = self.engine.open(self.cookie_header, self.client)
        if self.flavour == "async":
            self.loop.run_until_complete(self.engine.aload(session))
        else:
            session._ensure()
        return session

    def finish(self, session: Session, status: int = 200) -> Visit:
        plan = self.engine.commit(session, status)
        if self.flavour == "async":
            saved = self.loop.run_until_complete(self.engine.arun(plan))
        else:
            saved = self.engine.run(plan)
        self._keep(plan)
        return Visit(None, plan, saved, session)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def _keep(self, plan: CommitPlan) -> None:
        header = plan.set_cookie
        if header is None:
            return
        pair, _, attributes = header.partition(";")
        value = pair.partition("=")[2]
        if "Max-Age=0" in attributes or not value:
            self.cookie = None
        else:
            self.cookie = value

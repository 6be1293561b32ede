"""asyncio.gather and ensure_future for tests that run on asyncio and trio alike."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

T = TypeVar("T")


async def gather(*awaitables: Awaitable[T]) -> list[T]:
    results: list[Any] = [None] * len(awaitables)

    async def one(index: int, awaitable: Awaitable[T]) -> None:
        results[index] = await awaitable

    async with anyio.create_task_group() as group:
        for index, awaitable in enumerate(awaitables):
            group.start_soon(one, index, awaitable)
    return results


class Background(Generic[T]):
    """``awaitable`` running in ``group``; ``await task.result()`` waits for its value."""

    def __init__(self, group: TaskGroup, awaitable: Awaitable[T]) -> None:
        self._done = anyio.Event()
        self._value: Any = None
        group.start_soon(self._run, awaitable)

    async def _run(self, awaitable: Awaitable[T]) -> None:
        self._value = await awaitable
        self._done.set()

    async def result(self) -> T:
        await self._done.wait()
        return self._value  # type: ignore[no-any-return]

"""This process's view of the heads of the streams its sockets follow, so a ping costs no query.

A ``ping`` first delivers whatever lies between the socket's last ``seq`` and its stream's head
(PROTOCOL Part B: even a lost *last* event arrives by the next heartbeat). Reading the head from
the database on every ping costs a thread hop and a query per heartbeat — most of a ping's cost —
so each process keeps the heads of the streams its sockets follow here, learnt from

* every event this process publishes or hears on the channel layer (:meth:`Heads.saw`), and
* a refresh from the database every :data:`REFRESH_S` seconds, for all followed streams in one
  query per chunk, which is how an event whose broadcast was lost (a full channel-layer queue, a
  crash between commit and publish, another process's broadcast dropped by Redis) becomes known.

A head is never ahead of the committed store (it is only learnt from committed events), so a ping
that finds ``head > last_seq`` fetches real events. A lost last event arrives by the first ping
after the next refresh: at most :data:`REFRESH_S` later than with a query per ping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter

from channels.db import database_sync_to_async

from beacon_backend.models import StreamHead

log = logging.getLogger(__name__)

REFRESH_S = float(os.environ.get("BEACON_HEAD_REFRESH_S", "1.0"))
CHUNK = 500  # streams per query (well under SQLite's bound-parameter limit)


class Heads:
    """Known heads of the followed streams, and the task that refreshes them."""

    def __init__(self) -> None:
        self.known: dict[str, int] = {}
        self.followers: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def follow(self, stream: str, head: int) -> None:
        """A socket follows ``stream``, whose head it just read from the store."""
        self.followers[stream] += 1
        self.saw(stream, head)
        task = self._task
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._refresh_while_followed())

    def unfollow(self, stream: str) -> None:
        self.followers[stream] -= 1
        if self.followers[stream] <= 0:
            del self.followers[stream]
            self.known.pop(stream, None)

    def saw(self, stream: str, seq: int) -> None:
        """``seq`` of ``stream`` is committed (only followed streams are remembered)."""
        if stream in self.followers and seq > self.known.get(stream, -1):
            self.known[stream] = seq

    def get(self, stream: str) -> int | None:
        return self.known.get(stream)

    async def refresh(self) -> None:
        """Read the heads of every followed stream from the store."""
        streams = list(self.followers)
        for start in range(0, len(streams), CHUNK):
            rows = await database_sync_to_async(_read_heads)(streams[start:start + CHUNK])
            for stream, seq in rows:
                self.saw(stream, seq)

    async def _refresh_while_followed(self) -> None:
        while self.followers:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup: keep the last known heads, try again later
                log.exception("refreshing stream heads failed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _read_heads(streams: list[str]) -> list[tuple[str, int]]:
    return list(StreamHead.objects.filter(stream__in=streams).values_list("stream", "last_seq"))


HEADS = Heads()

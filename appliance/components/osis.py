"""The OSIS component: opens the object store at start-up and keeps its views current.

At start it repairs any view that fell behind the key/value store (a crash between the
two writes). With etcd shared by several appliances, it then follows the store's
changes and applies other appliances' writes to this appliance's views.
"""

import asyncio
import logging

from appliance.components import Runtime, register
from appliance.config import Config
from appliance.log import fields
from appliance.osis.kv import Compacted
from appliance.osis.store import ObjectStore, open_store
from appliance.runner import Component

log = logging.getLogger("appliance.osis")


class Osis(Component):
    name = "osis"

    def __init__(self, cfg: Config, runtime: Runtime | None = None, poll: float = 1.0):
        self.cfg, self.runtime, self.poll = cfg, runtime, poll
        self.store: ObjectStore | None = None
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()  # set while serve() is not using the store
        self._idle.set()

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self.store = await asyncio.to_thread(open_store, self.cfg.osis, self.cfg.node.state_dir)
        fixed = await asyncio.to_thread(self.store.repair)
        if self.runtime is not None:
            self.runtime.store = self.store
        log.info("osis.opened", extra=fields(kv=self.cfg.osis.kv, views=self.cfg.osis.views,
                                             revision=self.store.revision(),
                                             repaired=sum(r.fixed for r in fixed.values()),
                                             corrupt=sum(len(r.corrupt) for r in fixed.values())))

    async def serve(self) -> None:
        self._idle.clear()
        try:
            if self.cfg.osis.kv != "etcd":
                await self._stop.wait()  # every write goes through this appliance's store
                return
            after = await asyncio.to_thread(self.store.revision)
            while not self._stop.is_set():
                after = await asyncio.to_thread(self._follow, after)
        finally:
            self._idle.set()

    def _follow(self, after: int) -> int:
        """Apply the changes after `after`; returns the revision reached."""
        try:
            changes = self.store.changes(after, timeout=self.poll)
        except Compacted:
            log.warning("osis.resync", extra=fields(after=after))
            revision = self.store.revision()
            self.store.repair()
            return revision
        self.store.apply(changes)
        return max((c.revision for c in changes), default=after)

    async def stop(self) -> None:
        self._stop.set()
        if self.runtime is not None:
            self.runtime.store = None
        await self._idle.wait()  # at most one poll
        if self.store is not None:
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)


@register("osis")
def build(cfg: Config, runtime: Runtime) -> Osis:
    return Osis(cfg, runtime)

"""A TCP proxy on loopback that can go silent: for half-dead connections in tests.

`Proxy(host, port)` listens on 127.0.0.1 and passes bytes both ways to host:port.
`freeze()` makes the connections open now pass nothing more, without closing them — what
a peer or a NAT gone without a FIN looks like; connections made later pass bytes again.
"""

import asyncio


class Proxy:
    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._frozen: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        for task in self._tasks:
            task.cancel()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def freeze(self) -> None:
        for frozen in self._frozen:
            frozen.set()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]
        frozen = asyncio.Event()
        self._frozen.append(frozen)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(src, dst, frozen))
            self._tasks.add(task)

    @staticmethod
    async def _pump(src, dst, frozen: asyncio.Event) -> None:
        while data := await src.read(65536):
            if frozen.is_set():
                continue  # swallowed: nothing passes, nothing closes
            dst.write(data)
            await dst.drain()

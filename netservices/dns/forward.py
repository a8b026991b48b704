"""Asking upstream resolvers: UDP first, TCP when the answer is truncated, failover.

Each query goes out from a fresh UDP socket (a random source port) with a random id
(RFC 5452 9.2); a reply that does not match id and question is ignored. An upstream
that times out, refuses, fails or cannot be reached is skipped for the next one in
order. `resolve()` returns the first good answer, or None when none came.
"""

import asyncio
import ipaddress
import logging
import secrets

from netservices.dns import wire

log = logging.getLogger("netservices.dns.forward")

_RETRY_ON = (wire.SERVFAIL, wire.REFUSED, wire.NOTIMP, wire.FORMERR)


def parse_upstream(spec: str) -> tuple[str, int]:
    """("1.2.3.4", 53) from "1.2.3.4", "1.2.3.4:5353", "::1" or "[::1]:5353"."""
    host, port = spec, 53
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif spec.count(":") == 1:
        host, port_text = spec.split(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError("port out of range")
    return host, port


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, msg_id: int):
        self.msg_id = msg_id
        self.future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if wire.message_id(data) == self.msg_id and not self.future.done():
            self.future.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and friends
        if not self.future.done():
            self.future.set_exception(exc)


class Forwarder:
    """Resolves queries through `upstreams` [(host, port)], each given `timeout` seconds."""

    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 2.0,
                 udp_size: int = 1232):
        self.upstreams = upstreams
        self.timeout = timeout
        self.udp_size = udp_size

    async def resolve(self, q: wire.Query) -> wire.Upstream | None:
        last = None
        for host, port in self.upstreams:
            try:
                answer = await asyncio.wait_for(self._ask(q, host, port), self.timeout)
            except (TimeoutError, OSError, EOFError, wire.Malformed) as exc:
                log.debug("dns.upstream_failed",
                          extra={"fields": {"upstream": f"{host}:{port}", "error": repr(exc)}})
                continue
            if answer.rcode not in _RETRY_ON:
                return answer
            last = answer
        return last

    async def _ask(self, q: wire.Query, host: str, port: int) -> wire.Upstream:
        msg_id = secrets.randbelow(65536)
        query = wire.upstream_query(q, msg_id, self.udp_size)
        data = await self._udp(query, msg_id, host, port)
        if wire.truncated(data):  # RFC 7766 5: retry over TCP
            data = await self._tcp(query, host, port)
        return wire.parse_upstream(data, q, msg_id)

    async def _udp(self, query: bytes, msg_id: int, host: str, port: int) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Reply(msg_id), remote_addr=(host, port))
        try:
            transport.sendto(query)
            return await proto.future
        finally:
            transport.close()

    async def _tcp(self, query: bytes, host: str, port: int) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
        except asyncio.IncompleteReadError as exc:
            raise EOFError("upstream closed the connection") from exc
        finally:
            writer.close()

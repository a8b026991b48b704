"""The enrollment storm's load generator: N simulated machines, each DHCP, TFTP, boot script, enroll.

Run inside the generator namespace by bench/enroll.py:

    python -m bench._storm SERVER RELAY N TOKEN DEADLINE

All simulated machines live in this one namespace, behind a simulated relay: DHCP goes
out relayed (giaddr = RELAY, RFC 1542 4.1, as perfdhcp does) from RELAY:67 and the
replies come back there; the namespace owns the relay's whole subnet (`ip route add
local SUBNET dev lo`), so each machine then speaks TFTP and HTTP from the very address it
leased. Per machine: DISCOVER/OFFER/REQUEST/ACK with the options QEMU's BIOS PXE ROM
sends, a TFTP read of the boot file DHCP named (checked byte for byte against the local
copy), GET of the iPXE boot script, and the enrollment POST with random facts. Every
wait is bounded (retries, per-machine and overall deadlines). Prints one JSON line.
"""

import asyncio
import ipaddress
import json
import os
import random
import resource
import struct
import sys
import time
import uuid

COOKIE = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK = 1, 2, 3, 5
PXE_OPTIONS = {93: b"\x00\x00", 94: b"\x01\x02\x01", 60: b"PXEClient:Arch:00000:UNDI:002001",
               55: bytes([1, 3, 6, 12, 15, 43, 60, 66, 67, 128, 129, 130])}
LOADERS = {"undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe"}
TRIES, DHCP_WAIT, TFTP_WAIT, HTTP_WAIT = 4, 2.0, 1.0, 30.0
BLKSIZE = 1456


def dhcp_packet(kind: int, xid: int, mac: bytes, relay: str, extra: dict[int, bytes]) -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0, bytes(4), bytes(4),
                       bytes(4), ipaddress.IPv4Address(relay).packed, mac, b"", b"")
    opts = {53: bytes([kind]), 61: b"\x01" + mac, **PXE_OPTIONS, **extra}
    return head + COOKIE + b"".join(bytes([k, len(v)]) + v for k, v in opts.items()) + b"\xff"


def dhcp_parse(data: bytes) -> tuple[int, dict]:
    """(xid, {yiaddr, file, options}) of a reply; ValueError for anything else."""
    if len(data) < 240 or data[0] != 2 or data[236:240] != COOKIE:
        raise ValueError("not a DHCP reply")
    opts, i = {}, 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        opts[data[i]] = data[i + 2:i + 2 + data[i + 1]]
        i += 2 + data[i + 1]
    file = opts.get(67) or data[108:236].split(b"\0", 1)[0]
    return struct.unpack("!I", data[4:8])[0], {
        "yiaddr": str(ipaddress.IPv4Address(data[16:20])), "file": file.decode(), "options": opts}


class Relay(asyncio.DatagramProtocol):
    """The relay's socket: replies matched to waiting machines by xid."""

    def __init__(self):
        self.waiting: dict[int, asyncio.Queue] = {}
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            xid, reply = dhcp_parse(data)
        except (ValueError, IndexError, struct.error):
            return
        if xid in self.waiting:
            self.waiting[xid].put_nowait(reply)

    async def exchange(self, packet: bytes, xid: int, server: str, want: int) -> dict:
        queue = self.waiting.setdefault(xid, asyncio.Queue())
        try:
            for _ in range(TRIES):
                self.transport.sendto(packet, (server, 67))
                try:
                    while True:
                        reply = await asyncio.wait_for(queue.get(), DHCP_WAIT)
                        if reply["options"].get(53) == bytes([want]):
                            return reply
                except TimeoutError:
                    continue
            raise TimeoutError(f"no DHCP {'OFFER' if want == OFFER else 'ACK'} after {TRIES} tries")
        finally:
            self.waiting.pop(xid, None)


async def dora(relay: Relay, server: str, relay_ip: str, mac: bytes) -> dict:
    xid = random.getrandbits(32)
    offer = await relay.exchange(dhcp_packet(DISCOVER, xid, mac, relay_ip, {}), xid, server, OFFER)
    extra = {50: ipaddress.IPv4Address(offer["yiaddr"]).packed, 54: offer["options"][54]}
    return await relay.exchange(dhcp_packet(REQUEST, xid, mac, relay_ip, extra), xid, server, ACK)


class TftpRead(asyncio.DatagramProtocol):
    """One lock-step TFTP read (RFC 1350, options RFC 2347/2348/2349)."""

    def __init__(self):
        self.packets: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.packets.put_nowait((data, addr))


async def tftp_get(local: str, server: str, name: str) -> bytes:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(TftpRead, local_addr=(local, 0))
    try:
        return await _tftp_transfer(transport, proto, server, name)
    finally:
        transport.close()


async def _tftp_transfer(transport, proto, server: str, name: str) -> bytes:
    rrq = b"\0\1" + b"\0".join([name.encode(), b"octet", b"tsize", b"0", b"blksize",
                                str(BLKSIZE).encode()]) + b"\0"
    last, dest, block, blksize, chunks = rrq, (server, 69), 0, 512, []
    while True:
        for _ in range(TRIES + 1):
            transport.sendto(last, dest)
            try:
                data, addr = await asyncio.wait_for(proto.packets.get(), TFTP_WAIT)
                break
            except TimeoutError:
                continue
        else:
            raise TimeoutError(f"TFTP {name}: no answer after block {block}")
        dest, op = addr, data[:2]
        if op == b"\0\5":
            raise RuntimeError(f"TFTP {name}: error {data[4:-1].decode(errors='replace')}")
        if op == b"\0\6":  # OACK: acknowledge with block 0
            opts = data[2:].split(b"\0")
            blksize = int(dict(zip(opts[::2], opts[1::2], strict=False)).get(b"blksize", b"512"))
        elif op == b"\0\3" and struct.unpack("!H", data[2:4])[0] == (block + 1) & 0xFFFF:
            block += 1
            chunks.append(data[4:])
            if len(data) - 4 < blksize:
                transport.sendto(b"\0\4" + struct.pack("!H", block & 0xFFFF), dest)
                return b"".join(chunks)
        last = b"\0\4" + struct.pack("!H", block & 0xFFFF)


async def http(local: str, server: str, method: str, path: str, body: bytes = b"",
               headers: str = "") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(server, 80, local_addr=(local, 0))
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n{headers}"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        reply = await reader.read()
    finally:
        writer.close()
    head, _, content = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content


def facts(index: int, mac: str, ip: str) -> dict:
    return {"interfaces": [{"mac": mac, "ip": ip, "boot": True, "driver": "e1000", "name": "eth0",
                            "link": True}],
            "uuid": str(uuid.uuid4()), "serial": f"STORM-{index:05d}", "vendor": "PyLabs",
            "product": "StormMachine", "cpus": random.choice([1, 2, 4, 8, 16, 32]),
            "memory_mb": random.choice([512, 1024, 4096, 65536]),
            "disks": [{"name": "vda", "size_bytes": random.randrange(1 << 30, 1 << 42),
                       "serial": f"SDISK-{index:05d}"}]}


async def machine(index: int, relay: Relay, server: str, relay_ip: str, token: str) -> dict:
    """One machine's boot; the seconds each stage took, or the stage where it failed."""
    mac = bytes([0x52, 0x54, 0x01, index >> 16 & 0xFF, index >> 8 & 0xFF, index & 0xFF])
    text, times, stage = ":".join(f"{b:02x}" for b in mac), {}, "dhcp"
    began = time.monotonic()
    try:
        ack = await dora(relay, server, relay_ip, mac)
        ip, times["dhcp"], stage = ack["yiaddr"], time.monotonic() - began, "tftp"
        loader = await tftp_get(ip, server, ack["file"])
        if ack["file"] not in LOADERS or loader != _local(ack["file"]):
            raise RuntimeError(f"TFTP {ack['file']}: {len(loader)} bytes, not the loader")
        times["tftp"], stage = time.monotonic() - began - sum(times.values()), "script"
        status, script = await asyncio.wait_for(http(ip, server, "GET", f"/boot/ipxe?mac={text}"), HTTP_WAIT)
        if status != 200 or b"enrolling" not in script:
            raise RuntimeError(f"boot script: {status} {script[:60]!r}")
        times["script"], stage = time.monotonic() - began - sum(times.values()), "enroll"
        body = json.dumps(facts(index, text, ip)).encode()
        status, reply = await asyncio.wait_for(http(
            ip, server, "POST", "/api/v1/enroll", body,
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"), HTTP_WAIT)
        answer = json.loads(reply) if status == 200 else {}
        if answer.get("action") != "poweroff" or answer.get("ip") != ip:
            raise RuntimeError(f"enroll: {status} {reply[:100]!r}")
        times["enroll"] = time.monotonic() - began - sum(times.values())
        return {"ok": True, "times": times, "done": time.monotonic()}
    except Exception as exc:  # noqa: BLE001 - every failure is counted by its stage
        return {"ok": False, "stage": stage, "error": f"{type(exc).__name__}: {exc}"[:200]}


_LOCAL: dict[str, bytes] = {}


def _local(name: str) -> bytes:
    if name not in _LOCAL:
        with open(LOADERS[name], "rb") as f:
            _LOCAL[name] = f.read()
    return _LOCAL[name]


async def storm(server: str, relay_ip: str, count: int, token: str, deadline: float) -> dict:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(Relay, local_addr=(relay_ip, 67))
    began = time.monotonic()
    tasks = [asyncio.create_task(machine(i, relay, server, relay_ip, token)) for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    transport.close()
    results = [t.result() for t in done]
    ok = [r for r in results if r["ok"]]
    failures: dict[str, int] = {}
    for r in results:
        if not r["ok"]:
            failures[r["stage"]] = failures.get(r["stage"], 0) + 1
    if pending:
        failures["deadline"] = len(pending)
    elapsed = max((r["done"] for r in ok), default=began) - began
    stages = {s: sorted(r["times"][s] for r in ok) for s in ("dhcp", "tftp", "script", "enroll")}
    return {"machines": count, "enrolled": len(ok), "seconds": elapsed, "failures": failures,
            "errors": sorted({r["error"] for r in results if not r["ok"]})[:5],
            "stages": {s: {"p50": v[len(v) // 2], "p95": v[int(len(v) * 0.95)], "max": v[-1]}
                       for s, v in stages.items() if v}}


def main(server: str, relay_ip: str, count: int, token: str, deadline: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * count + 256)), hard))
    cpu = os.times()
    result = asyncio.run(storm(server, relay_ip, count, token, deadline))
    after = os.times()
    result["generator_cpu"] = after.user + after.system - cpu.user - cpu.system
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))

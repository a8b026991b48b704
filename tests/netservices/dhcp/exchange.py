"""A scriptable DHCP client for the namespace tests: `python -m tests.netservices.dhcp.exchange`.

    send --kind discover --mac M [--giaddr G] [--opt 82=0104…] → the first reply, as JSON
    dora --count N                                            → one JSON line per ACK

It runs inside a client namespace (`ip netns exec`), sends from --bind (default
0.0.0.0:68 on eth0) to --to (default broadcast:67), and is bounded in count and time.
"""

import argparse
import json
import socket
import sys
import time

from tests.netservices.dhcp.packets import decode, message


def _socket(bind: str, interface: str) -> socket.socket:
    host, port = bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    sock.bind((host, int(port)))
    return sock


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _await(sock, xid: int, deadline: float) -> dict | None:
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(4096)
        except TimeoutError:
            return None
        reply = decode(data)
        if reply["xid"] == xid:
            return reply
    return None


def _options(pairs: list[str]) -> list:
    out = []
    for pair in pairs:
        code, value = pair.split("=", 1)
        out.append((int(code), bytes.fromhex(value)))
    return out


def cmd_send(args, sock) -> int:
    xid = int(time.monotonic() * 1000) & 0xFFFFFFFF
    options = _options(args.opt) + ([("requested_addr", args.requested)] if args.requested else []) \
        + ([("server_id", args.server_id)] if args.server_id else [])
    sock.sendto(message(args.kind, args.mac, xid=xid, giaddr=args.giaddr, ciaddr=args.ciaddr,
                        flags=0x8000, options=options), _address(args.to))
    reply = _await(sock, xid, time.monotonic() + args.timeout)
    print(json.dumps(_jsonable(reply) if reply else {"timeout": True}))
    return 0


def cmd_dora(args, sock) -> int:
    """DISCOVER + REQUEST for `count` MACs, one after another; prints each ACK."""
    end = time.monotonic() + args.deadline
    for i in range(args.count):
        if time.monotonic() > end:
            break
        mac = f"02:00:00:00:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"
        for _attempt in range(args.retries):
            ack = _dora_one(sock, mac, args, 0x10000 + i * 16 + _attempt)
            if ack is not None:
                print(json.dumps({"mac": mac, "ip": ack["yiaddr"]}), flush=True)
                break
    return 0


def _dora_one(sock, mac, args, xid):
    to = _address(args.to)
    sock.sendto(message("discover", mac, xid=xid, flags=0x8000), to)
    offer = _await(sock, xid, time.monotonic() + args.timeout)
    if offer is None or offer["options"].get("message-type") != 2:
        return None
    sock.sendto(message("request", mac, xid=xid, flags=0x8000, options=[
        ("server_id", offer["options"]["server_id"]), ("requested_addr", offer["yiaddr"])]), to)
    ack = _await(sock, xid, time.monotonic() + args.timeout)
    return ack if ack is not None and ack["options"].get("message-type") == 5 else None


def _jsonable(reply: dict) -> dict:
    options = {str(k): (v.hex() if isinstance(v, bytes) else v) for k, v in reply["options"].items()}
    return {**reply, "options": options}


def main(argv: list[str]) -> int:
    top = argparse.ArgumentParser()
    top.add_argument("--bind", default="0.0.0.0:68")
    top.add_argument("--interface", default="eth0")
    top.add_argument("--to", default="255.255.255.255:67")
    top.add_argument("--timeout", type=float, default=2.0)
    sub = top.add_subparsers(dest="cmd", required=True)
    send = sub.add_parser("send")
    send.add_argument("--kind", default="discover")
    send.add_argument("--mac", default="52:54:00:12:34:56")
    send.add_argument("--giaddr", default="0.0.0.0")
    send.add_argument("--ciaddr", default="0.0.0.0")
    send.add_argument("--requested")
    send.add_argument("--server-id")
    send.add_argument("--opt", action="append", default=[], help="CODE=HEX")
    dora = sub.add_parser("dora")
    dora.add_argument("--count", type=int, default=100)
    dora.add_argument("--retries", type=int, default=3)
    dora.add_argument("--deadline", type=float, default=60.0)
    args = top.parse_args(argv)
    with _socket(args.bind, args.interface) as sock:
        return {"send": cmd_send, "dora": cmd_dora}[args.cmd](args, sock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

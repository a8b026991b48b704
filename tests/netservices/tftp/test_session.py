"""The transfer state machine, without sockets: negotiation, windows, ACKs, timeouts;
and the DATA packets a file is cut into (blocks.FileBlocks), across its chunks."""

import os
import random

import pytest

from netservices.tftp import wire
from netservices.tftp.blocks import CHUNK, FileBlocks, to_file
from netservices.tftp.session import Limits, Options, Transfer, negotiate

LIMITS = Limits(max_blksize=1468, max_windowsize=16, timeout=1.0, max_timeout=4.0, retries=3)

NEGOTIATION = {
    "nothing asked": ({}, 100, Options(512, 1, 1.0, {})),
    "blksize granted": ({"blksize": "1024"}, 100, Options(1024, 1, 1.0, {"blksize": "1024"})),
    "blksize capped": ({"blksize": "65464"}, 100, Options(1468, 1, 1.0, {"blksize": "1468"})),
    "blksize minimum 8": ({"blksize": "8"}, 100, Options(8, 1, 1.0, {"blksize": "8"})),
    "blksize 7 ignored": ({"blksize": "7"}, 100, Options(512, 1, 1.0, {})),
    "blksize not a number ignored": ({"blksize": "abc"}, 100, Options(512, 1, 1.0, {})),
    "blksize negative ignored": ({"blksize": "-5"}, 100, Options(512, 1, 1.0, {})),
    "tsize answered": ({"tsize": "0"}, 1234, Options(512, 1, 1.0, {"tsize": "1234"})),
    "tsize of unknown size left out": ({"tsize": "0"}, None, Options(512, 1, 1.0, {})),
    "timeout granted": ({"timeout": "5"}, 1, Options(512, 1, 5.0, {"timeout": "5"})),
    "timeout 0 ignored": ({"timeout": "0"}, 1, Options(512, 1, 1.0, {})),
    "timeout 256 ignored": ({"timeout": "256"}, 1, Options(512, 1, 1.0, {})),
    "windowsize granted": ({"windowsize": "4"}, 1, Options(512, 4, 1.0, {"windowsize": "4"})),
    "windowsize capped": ({"windowsize": "500"}, 1, Options(512, 16, 1.0, {"windowsize": "16"})),
    "windowsize 0 ignored": ({"windowsize": "0"}, 1, Options(512, 1, 1.0, {})),
    "unknown option ignored": ({"multicast": "", "x": "1"}, 1, Options(512, 1, 1.0, {})),
    "OVMF": ({"blksize": "1468", "windowsize": "4", "tsize": "0"}, 9,
             Options(1468, 4, 1.0, {"blksize": "1468", "tsize": "9", "windowsize": "4"})),
}


@pytest.mark.parametrize("asked,size,expected", NEGOTIATION.values(), ids=NEGOTIATION.keys())
def test_negotiation(asked, size, expected):
    assert negotiate(asked, size, LIMITS) == expected


def blocks_of(packets):
    return [wire.HEADER.unpack_from(p)[1] for p in packets]


def content(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def file_blocks(data: bytes, blksize: int, chunk: int = CHUNK) -> FileBlocks:
    """`data` the way a worker gets it: in a memfd (blocks.to_file), read with pread."""
    file, offset, size = to_file(data)
    return FileBlocks(file, blksize, offset, size, chunk)


def transfer(size=10 * 512 + 3, options=None, now=0.0):
    data = content(size)
    opts = negotiate(options or {}, size, LIMITS)
    return Transfer(file_blocks(data, opts.blksize), opts, LIMITS, now), data


def run_lockstep(t):
    packets, out, now = t.start(0.0), b"", 0.0
    while not t.done:
        assert len(packets) == 1
        opcode, block = wire.HEADER.unpack_from(packets[0])
        if opcode == wire.DATA:
            out += packets[0][4:]
        packets = t.on_ack(block if opcode == wire.DATA else 0, now)
    return out


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 5120, 5121])
def test_lockstep_sends_the_whole_file(size):
    t, data = transfer(size)
    assert run_lockstep(t) == data and not t.failed


def test_oack_first_then_data_after_ack_0():
    t, _ = transfer(options={"blksize": "1024", "tsize": "0"})
    assert t.start(0) == [wire.oack({"blksize": "1024", "tsize": str(10 * 512 + 3)})]
    assert t.on_ack(5, 0.1) == []  # not the ACK of the OACK
    assert blocks_of(t.on_ack(0, 0.1)) == [1]


def test_window_sends_windowsize_blocks_per_ack():
    t, _ = transfer(options={"windowsize": "4"})
    t.start(0)
    assert blocks_of(t.on_ack(0, 0)) == [1, 2, 3, 4]
    assert blocks_of(t.on_ack(4, 0)) == [5, 6, 7, 8]
    assert blocks_of(t.on_ack(6, 0)) == [7, 8, 9, 10]  # go back: the client lost 7
    assert blocks_of(t.on_ack(10, 0)) == [11]  # the last (short) block
    assert t.on_ack(11, 0) == [] and t.done and not t.failed


def test_duplicate_acks_are_not_answered():
    """RFC 1123 4.2.3.1: answering duplicates doubles every packet from then on."""
    t, _ = transfer()
    t.start(0)
    assert blocks_of(t.on_ack(1, 0)) == [2]
    assert t.on_ack(1, 0) == [] and t.on_ack(1, 0) == []
    assert t.on_ack(0, 0) == [] and t.on_ack(9, 0) == []  # stale; never sent
    assert t.duplicates == 4
    assert blocks_of(t.on_ack(2, 0)) == [3]


def test_timeout_retransmits_with_backoff_then_gives_up():
    t, _ = transfer()
    assert blocks_of(t.start(0)) == [1]
    assert t.on_timeout(0.9) == []  # not yet
    times = []
    now = 0.0
    while not t.done:
        now = t.deadline
        if t.on_timeout(now):
            times.append(now)
    assert times == [1.0, 3.0, 7.0]  # waits of 1, 2, 4 s (max_timeout 4), then 3 retries
    assert t.failed and t.retransmits == 3


def test_an_ack_resets_the_backoff():
    t, _ = transfer()
    t.start(0)
    t.on_timeout(1.0)
    t.on_ack(1, 1.5)
    assert t.deadline == 2.5 and t.tries == 0


def test_block_numbers_roll_over_at_65536():
    size = 65540 * 8
    opts = negotiate({"blksize": "8"}, size, LIMITS)
    t = Transfer(file_blocks(bytes(size), 8), opts, LIMITS, 0)
    t.start(0)
    for n in range(65535):
        t.on_ack(n, 0)
    assert (t.acked, t.sent) == (65534, 65535)
    assert blocks_of(t.on_ack(65535, 0)) == [0]  # block 65536 goes out as 0
    assert blocks_of(t.on_ack(0, 0)) == [1]
    assert t.acked == 65536


def _replay(chunk: int, size: int, windowsize: int, choices: list[int], prepared=False):
    """What a transfer sends when each answer is one of: ACK the last block sent (0), ACK
    an earlier one (1), a duplicate ACK (2), a time-out (3), its file read `chunk` bytes
    at a time, with or without prepare() after each send."""
    opts = Options(blksize=16, windowsize=windowsize)
    t = Transfer(file_blocks(content(size), 16, chunk), opts, Limits(retries=50), 0.0)
    sent, now = [t.start(0.0)], 0.0
    for choice in choices:
        if t.done:
            break
        if prepared:
            t.prepare()
        now += 1
        if choice == 3:
            packets = t.on_timeout(t.deadline)
        else:
            last = blocks_of(sent[-1])[-1] if sent[-1] else t.acked & 0xFFFF
            ack = {0: last, 1: max(t.acked, last - 1) & 0xFFFF, 2: t.acked & 0xFFFF}[choice]
            packets = t.on_ack(ack, now)
        sent.append([bytes(p) for p in packets])
    return sent, (t.acked, t.sent, t.last, t.done, t.bytes_sent, t.retransmits, t.duplicates)


@pytest.mark.parametrize("windowsize", [1, 3, 8])
@pytest.mark.parametrize("size", [0, 15, 16, 17, 47, 48, 49, 160, 161, 500])
def test_chunks_change_nothing_that_is_sent(size, windowsize):
    """Packets are cut a chunk at a time, and ahead of need with prepare(); windows and
    go-back retransmissions that cross chunk edges (chunks of 1, 2, 3 and 5 blocks) send
    what one chunk for the whole file sends, byte for byte, with the same counters."""
    rng = random.Random(f"{size}-{windowsize}")
    for _ in range(20):
        choices = [rng.choice([0, 0, 0, 1, 2, 3]) for _ in range(200)]
        whole = _replay(CHUNK, size, windowsize, choices)
        for chunk in (16, 32, 48, 80):
            for prepared in (False, True):
                assert _replay(chunk, size, windowsize, choices, prepared) == whole, (chunk, prepared)
    everything, state = _replay(48, size, windowsize, [0] * 200, prepared=True)
    assert state[3] and b"".join(p[4:] for batch in everything for p in batch) == content(size)
    assert state[4] == size  # bytes_sent: each block once when nothing is lost


@pytest.mark.parametrize("chunk", [16, CHUNK])
def test_a_file_that_shrinks_ends_with_a_short_block_and_one_that_grows_is_cut(tmp_path, chunk):
    path = tmp_path / "f"
    path.write_bytes(content(100))
    with open(path, "rb", buffering=0) as grows, open(path, "rb", buffering=0) as shrinks:
        growing, shrinking = FileBlocks(grows, 16, 0, 100, chunk), FileBlocks(shrinks, 16, 0, 100, chunk)
        with open(path, "ab") as more:
            more.write(b"x" * 1000)  # grows after the transfer announced 100 bytes
        assert b"".join(p[4:] for p in growing.packets(1, 100)) == content(100)
        os.truncate(path, 40)
        packets = shrinking.packets(1, 100)
        assert [len(p) - 4 for p in packets] == [16, 16, 8]  # ends early, short
        assert b"".join(p[4:] for p in packets) == content(40)


def test_prepare_cuts_the_next_window_before_the_ack_asks_for_it():
    opts = Options(blksize=16, windowsize=3)
    t = Transfer(file_blocks(content(500), 16, chunk=64), opts, Limits(), 0.0)  # 4 blocks a chunk
    t.start(0.0)  # blocks 1-3
    t.prepare()
    assert t.blocks.end >= 7  # 4-6, the next window, are cut
    assert blocks_of(t.on_ack(3, 0.0)) == [4, 5, 6]
    t.prepare()
    assert t.blocks.first == 4 and t.blocks.end >= 10  # 1-3 let go of; 4-6 kept for a resend
    assert blocks_of(t.on_timeout(t.deadline)) == [4, 5, 6]


def test_a_file_of_whole_blocks_ends_with_an_empty_one():
    blocks = file_blocks(content(64), 16, chunk=32)
    assert [len(p) - 4 for p in blocks.packets(1, 10)] == [16, 16, 16, 16, 0]
    assert blocks_of(blocks.packets(5, 6)) == [5]

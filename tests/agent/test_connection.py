"""agent.connection: the SCRAM key derivation it swaps in gives slixmpp's own bytes."""

import asyncio

import pytest
from slixmpp.util.sasl.mechanisms import SCRAM
from slixmpp.util.sasl.mechanisms import hash as scram_hash

from agent.connection import _SLIXMPP_HI, scram_hi, wait_event


@pytest.mark.parametrize("name", ["SHA-1", "SHA-256", "SHA-512"])
@pytest.mark.parametrize("password", ["pw", "pässwörd ✓", b"raw bytes"])
def test_hi_is_slixmpps_hi(name, password):
    mech = object.__new__(SCRAM)
    mech.hash_name, mech.hash = name, scram_hash(name)
    assert SCRAM.Hi is scram_hi
    assert scram_hi(mech, password, b"salt\x00\xff", 4096) == _SLIXMPP_HI(mech, password, b"salt\x00\xff", 4096)


async def test_wait_event_says_whether_the_event_came():
    event = asyncio.Event()
    assert await wait_event(event, 0.05) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True


async def test_a_loop_around_wait_event_stops_when_cancelled_as_the_event_is_set():
    """The job engine's and the presence writer's loops: with asyncio.wait_for (Python
    3.11) the cancel was dropped when it came in the loop turn the event was set in, and
    the engine never stopped (a CI run hung 300 s in stop_engine)."""
    async def loop(event):
        while True:
            await wait_event(event, 0.2)
            event.clear()

    for _ in range(50):
        event = asyncio.Event()
        task = asyncio.ensure_future(loop(event))
        await asyncio.sleep(0.001)
        event.set()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        if not done:
            task.cancel()
        assert done and task.cancelled(), "the cancellation was lost"

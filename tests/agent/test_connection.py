"""agent.connection: the SCRAM key derivation it swaps in gives slixmpp's own bytes."""

import pytest
from slixmpp.util.sasl.mechanisms import SCRAM
from slixmpp.util.sasl.mechanisms import hash as scram_hash

from agent.connection import _SLIXMPP_HI, scram_hi


@pytest.mark.parametrize("name", ["SHA-1", "SHA-256", "SHA-512"])
@pytest.mark.parametrize("password", ["pw", "pässwörd ✓", b"raw bytes"])
def test_hi_is_slixmpps_hi(name, password):
    mech = object.__new__(SCRAM)
    mech.hash_name, mech.hash = name, scram_hash(name)
    assert SCRAM.Hi is scram_hi
    assert scram_hi(mech, password, b"salt\x00\xff", 4096) == _SLIXMPP_HI(mech, password, b"salt\x00\xff", 4096)

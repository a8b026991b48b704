"""Schema evolution: objects written by an older IDL read with defaults; newer fields are skipped."""

from pathlib import Path

import thriftpy2
from thriftpy2.protocol import TCyBinaryProtocolFactory
from thriftpy2.utils import deserialize, serialize

from appliance.osis import codec
from appliance.osis.schema import TYPES, domain

V1 = thriftpy2.load(str(Path(__file__).parents[2] / "data" / "osis" / "domain_v1.thrift"),
                    module_name="domain_v1_thrift")
PROTOCOL = TCyBinaryProtocolFactory()


def test_an_old_object_reads_with_the_new_defaults(store):
    old = V1.Machine(guid="m-old", hostname="legacy", cpus=4, memory_mb=2048, state=1,
                     interfaces=[V1.NetworkInterface(mac="52:54:00:aa:bb:cc", boot=True)])
    key = store.key_of(TYPES["machine"], "m-old")
    store.kv.put(key, codec.frame(TYPES["machine"], serialize(old, PROTOCOL)))
    store.repair()  # as start-up does, after an upgrade
    got = store.get("machine", "m-old").obj
    assert (got.hostname, got.cpus, got.memory_mb, got.state) == ("legacy", 4, 2048, domain.MachineState.ENROLLED)
    assert got.tags == {} and got.arch is None and got.ip is None and got.updated == 0.0
    assert got.interfaces[0].mac == "52:54:00:aa:bb:cc" and got.interfaces[0].link is None
    assert [s.obj.guid for s in store.query("machine", [("mac", "=", "52:54:00:aa:bb:cc")])] == ["m-old"]


def test_an_older_reader_skips_the_new_fields():
    new = domain.Machine(guid="m-new", hostname="fresh", cpus=2, arch="efi-x64", tags={"rack": "r7"},
                         ip="10.0.0.7", interfaces=[domain.NetworkInterface(mac="aa", speed_mbps=10000)])
    payload = codec.encode(new)[codec.HEADER.size:]
    old = deserialize(V1.Machine(), payload, PROTOCOL)
    assert (old.guid, old.hostname, old.cpus) == ("m-new", "fresh", 2)
    assert old.interfaces[0].mac == "aa"
    assert not hasattr(old, "arch") and not hasattr(old, "tags")


def test_old_and_new_round_trip_through_each_other():
    """What an older appliance writes back keeps the fields it knows."""
    new = domain.Machine(guid="m", hostname="h", cpus=2, arch="bios")
    as_old = deserialize(V1.Machine(), serialize(new, PROTOCOL), PROTOCOL)
    back = codec.decode(codec.frame(TYPES["machine"], serialize(as_old, PROTOCOL)))
    assert (back.guid, back.hostname, back.cpus, back.arch) == ("m", "h", 2, None)

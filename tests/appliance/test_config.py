"""Config validation: good configs load, each bad one is refused naming the key and value."""

import dataclasses
import textwrap
from ipaddress import IPv4Address, IPv4Network

import pytest

from appliance import config

GOOD = {
    "empty file: all defaults": ("", lambda c: c.enabled() == ["appserver"]),
    "dhcp on a named segment": (
        """
        [dhcp]
        enabled = true
        interface = "eth1"
        subnet = "10.0.0.0/24"
        range = ["10.0.0.100", "10.0.0.200"]
        router = "10.0.0.1"
        """,
        lambda c: c.dhcp.subnet == IPv4Network("10.0.0.0/24")
        and c.dhcp.range == (IPv4Address("10.0.0.100"), IPv4Address("10.0.0.200")),
    ),
    "dhcp reservations, relays, proxy and boot files": (
        """
        [dhcp]
        subnet = "10.0.0.0/24"
        reservations = [{ mac = "52-54-00-12-34-56", ip = "10.0.0.20", hostname = "node1" }]
        relays = [{ subnet = "10.1.0.0/24", first = "10.1.0.10", last = "10.1.0.99", router = "10.1.0.1" }]
        proxy = true
        efi_boot_file = "snponly.efi"
        ipxe_script_url = "http://{server}:8000/boot/ipxe?mac=${net0/mac}"
        """,
        lambda c: c.dhcp.reservations[0].mac == "52:54:00:12:34:56" and c.dhcp.proxy
        and c.dhcp.relays[0].router == IPv4Address("10.1.0.1") and c.dhcp.efi_boot_file == "snponly.efi",
    ),
    "ipv6 listen address": ('[dns]\nlisten = ["::1", "127.0.0.1"]', lambda c: len(c.dns.listen) == 2),
    "etcd with endpoints": (
        '[osis]\nkv = "etcd"\netcd_endpoints = ["http://127.0.0.1:2379"]',
        lambda c: c.osis.kv == "etcd",
    ),
    "dns forwarders with ports, records, reverse zones": (
        '[dns]\nforwarders = ["10.0.0.53", "10.0.0.54:5353", "[fd00::53]:53"]\n'
        'records = ["www CNAME appliance", "_ldap._tcp SRV 0 0 389 ldap"]\nreverse_zones = ["10.0.0.0/24", "fd00::/64"]',
        lambda c: c.dns.forwarders[1] == "10.0.0.54:5353" and len(c.dns.records) == 2
        and c.dns.reverse_zones[0] == IPv4Network("10.0.0.0/24"),
    ),
    "node names": ('[node]\nname = "mgmt-01"\ndomain = "rack1.example.org"', lambda c: c.node.name == "mgmt-01"),
    "smb shares and users": (
        """
        [smb]
        enabled = true
        port = 4445
        users = [{ name = "installer", password = "pw" }]
        [[smb.shares]]
        name = "winpe"
        path = "/srv/winpe/"
        [[smb.shares]]
        name = "drivers"
        path = "/srv/drivers"
        guest = false
        users = ["installer"]
        """,
        lambda c: c.smb.shares[0].read_only and c.smb.shares[0].guest and c.smb.shares[0].path == "/srv/winpe"
        and c.smb.shares[1].users == ("installer",) and c.smb.users[0].password == "pw",
    ),
}

BAD = {
    "range address out of range": (
        '[dhcp]\nrange = ["10.0.0.1", "10.0.0.300"]',
        ['dhcp.range[1]: "10.0.0.300" is not an IPv4 address'],
    ),
    "unknown key, with a suggestion": ("[dhcp]\nlease_tme = 60", ["dhcp.lease_tme: unknown key (did you mean lease_time?)"]),
    "unknown key, nothing close": ("[dns]\nzzz = 1", ["dns.zzz: unknown key"]),
    "unknown table": ("[dchp]\nenabled = true", ["dchp: unknown table (did you mean dhcp?)"]),
    "a table that is a value": ("dhcp = 5", ["dhcp: must be a table"]),
    "dhcp without interface": (
        '[dhcp]\nenabled = true\nsubnet = "10.0.0.0/24"',
        ["dhcp.interface: must be set when dhcp is enabled"],
    ),
    "dhcp without subnet": (
        '[dhcp]\nenabled = true\ninterface = "eth1"',
        ["dhcp.subnet: must be set when dhcp is enabled"],
    ),
    "subnet with host bits": ('[dhcp]\nsubnet = "10.0.0.1/24"', ['dhcp.subnet: "10.0.0.1/24" is not an IPv4 network such as 10.0.0.0/24']),
    "range outside subnet": (
        '[dhcp]\nsubnet = "10.0.0.0/24"\nrange = ["10.0.1.1", "10.0.1.9"]',
        ["dhcp.range: is not inside subnet 10.0.0.0/24"],
    ),
    "range backwards": ('[dhcp]\nrange = ["10.0.0.9", "10.0.0.1"]', ["dhcp.range: first address is after the last"]),
    "range of three": (
        '[dhcp]\nrange = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]',
        ["dhcp.range: must be two addresses: the first and the last of the pool"],
    ),
    "interface with a slash": ('[dhcp]\ninterface = "eth/1"', ['dhcp.interface: "eth/1" is not a network interface name']),
    "bool as string": ('[dns]\nenabled = "yes"', ['dns.enabled: "yes" should be true or false']),
    "port too high": ("[appserver]\nport = 70000", ["appserver.port: 70000 should be less than or equal to 65535"]),
    "port as string": ('[tftp]\nport = "69"', ['tftp.port: "69" should be a whole number']),
    "address as number": ("[appserver]\nlisten = 5", ["appserver.listen: 5 is not an IP address (write it as a string)"]),
    "reservation with a bad mac": (
        '[dhcp]\nreservations = [{ mac = "52:54:00", ip = "10.0.0.5" }]',
        ['dhcp.reservations[0].mac: "52:54:00" is not a MAC address such as 52:54:00:12:34:56'],
    ),
    "reservation with an unknown key": (
        '[dhcp]\nreservations = [{ mac = "52:54:00:12:34:56", addr = "10.0.0.5" }]',
        ["dhcp.reservations[0].ip: is required", "dhcp.reservations[0].addr: unknown key"],
    ),
    "reservation outside every served subnet": (
        '[dhcp]\nsubnet = "10.0.0.0/24"\nreservations = [{ mac = "52:54:00:12:34:56", ip = "10.9.0.5" }]',
        ["dhcp.reservations: 10.9.0.5 is not inside a served subnet"],
    ),
    "one address reserved twice": (
        '[dhcp]\nreservations = [{ mac = "52:54:00:12:34:56", ip = "10.0.0.5" }, { mac = "52:54:00:12:34:57", ip = "10.0.0.5" }]',
        ["dhcp.reservations: ip 10.0.0.5 is reserved twice"],
    ),
    "relay pool outside its subnet": (
        '[dhcp]\nrelays = [{ subnet = "10.1.0.0/24", first = "10.1.0.10", last = "10.2.0.10" }]',
        ["dhcp.relays[0].first: pool is not inside subnet 10.1.0.0/24"],
    ),
    "boot script url not http": (
        '[dhcp]\nipxe_script_url = "tftp://x/boot.ipxe"',
        ['dhcp.ipxe_script_url: "tftp://x/boot.ipxe" is not an http:// or https:// URL'],
    ),
    "lease too short": ("[dhcp]\nlease_time = 5", ["dhcp.lease_time: 5 should be greater than or equal to 60"]),
    "choice": ('[osis]\nkv = "redis"', ["osis.kv: \"redis\" should be 'sqlite' or 'etcd'"]),
    "etcd without endpoints": ('[osis]\nkv = "etcd"', ['osis.etcd_endpoints: must be set when kv is "etcd"']),
    "postgres without dsn": ('[osis]\nviews = "postgresql"', ['osis.postgresql_dsn: must be set when views is "postgresql"']),
    "bad host name": ('[node]\nname = "-bad"', ['node.name: "-bad" is not a host name (letters, digits and inner hyphens, 63 at most)']),
    "bad domain": ('[node]\ndomain = "a..b"', ['node.domain: "a..b" is not a DNS domain name']),
    "list expected": ('[dns]\nforwarders = "1.1.1.1"', ['dns.forwarders: "1.1.1.1" should be a list']),
    "forwarder not an address": (
        '[dns]\nforwarders = ["dns.example.org"]',
        ['dns.forwarders[0]: "dns.example.org" is not an upstream resolver such as "10.0.0.1" or "10.0.0.1:5353"'],
    ),
    "static record that does not parse": (
        '[dns]\nrecords = ["www BOGUS x"]',
        ['dns.records[0]: "www BOGUS x" is not a DNS record (QTYPE: Invalid reverse lookup: [BOGUS])'],
    ),
    "reverse zone with host bits": (
        '[dns]\nreverse_zones = ["10.0.0.1/24"]',
        ['dns.reverse_zones[0]: "10.0.0.1/24" is not an IP network such as 10.0.0.0/24 or fd00::/64'],
    ),
    "udp size too small": ("[dns]\nudp_size = 100", ["dns.udp_size: 100 should be greater than or equal to 512"]),
    "smb share with a relative path": (
        '[smb]\nshares = [{ name = "x", path = "srv/x" }]',
        ['smb.shares[0].path: "srv/x" is not an absolute path'],
    ),
    "smb share named IPC$": (
        '[smb]\nshares = [{ name = "ipc$", path = "/x" }]',
        ['smb.shares[0].name: "ipc$" is not a share name (1-80 characters, none of \\/:*?"<>|[]+=;, and not IPC$)'],
    ),
    "smb share shared twice": (
        '[smb]\nshares = [{ name = "a", path = "/a" }, { name = "A", path = "/b" }]',
        ['smb.shares[1].name: "A" is shared twice'],
    ),
    "smb share for an unknown user": (
        '[smb]\nusers = [{ name = "u", password = "p" }]\nshares = [{ name = "a", path = "/a", users = ["v"] }]',
        ['smb.shares[0].users: "v" is not in smb.users'],
    ),
    "smb share nobody can reach": (
        '[smb]\nshares = [{ name = "a", path = "/a", guest = false }]',
        ["smb.shares[0].guest: is false but smb.users is empty: nobody could connect"],
    ),
    "smb user without password": (
        '[smb]\nusers = [{ name = "u", password = "" }]',
        ['smb.users[0].password: "" is empty: set a password'],
    ),
    "several at once, all reported": (
        '[dns]\nport = 0\n[tftp]\nenabled = 1',
        ["dns.port: 0 should be greater than or equal to 1", "tftp.enabled: 1 should be true or false"],
    ),
}


def _write(tmp_path, text):
    path = tmp_path / "appliance.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,check", GOOD.values(), ids=GOOD.keys())
def test_good_configs_load(tmp_path, text, check):
    assert check(config.load(_write(tmp_path, text)))


@pytest.mark.parametrize("text,problems", BAD.values(), ids=BAD.keys())
def test_bad_configs_name_the_key(tmp_path, text, problems):
    with pytest.raises(config.ConfigError) as err:
        config.load(_write(tmp_path, text))
    assert err.value.problems == problems


def test_not_toml(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(_write(tmp_path, "[dhcp\n"))
    assert err.value.problems[0].startswith("not valid TOML: ")


def test_missing_file(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(tmp_path / "nope.toml")
    assert err.value.problems == ["cannot read: No such file or directory"]


def test_sections_are_frozen():
    cfg = config.validate({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dhcp.enabled = True  # type: ignore[misc]


@pytest.mark.parametrize("env,arg,expected", [
    ({}, None, "/etc/appliance/appliance.toml"),
    ({"APPLIANCE_CONFIG": "/x.toml"}, None, "/x.toml"),
    ({"APPLIANCE_CONFIG": "/x.toml"}, "/y.toml", "/y.toml"),
])
def test_locate(env, arg, expected):
    assert str(config.locate(arg, env)) == expected


def test_only_enables_exactly_the_named_components():
    cfg = config.validate({"dns": {"enabled": True}})
    assert cfg.with_only(["tftp", "dns"]).enabled() == ["dns", "tftp"]


def test_only_still_validates_dhcp_safety():
    with pytest.raises(config.ConfigError) as err:
        config.validate({}).with_only(["dhcp"])
    assert err.value.problems == ["dhcp.interface: must be set when dhcp is enabled"]


def test_only_unknown_component():
    with pytest.raises(config.ConfigError) as err:
        config.validate({}).with_only(["dsn"])
    assert err.value.problems == ["--only: unknown component 'dsn' (did you mean dns?)"]


def test_render_round_trips(tmp_path):
    cfg = config.validate({"dhcp": {"enabled": True, "interface": "eth1", "subnet": "10.0.0.0/24",
                                    "range": ["10.0.0.10", "10.0.0.20"]}})
    assert config.load(_write(tmp_path, config.render(cfg))) == cfg


def test_render_documents_every_key():
    text = config.render(config.validate({}))
    for name, table in config.validate({}).components().items():
        assert f"[{name}]" in text
        for key in vars(table):
            assert f"\n{key} =" in text or f"\n# {key} = (unset)" in text
    cfg = config.validate({})
    for table in [cfg.node, *cfg.components().values()]:
        undocumented = [n for n, f in type(table).__pydantic_fields__.items() if not f.description]
        assert undocumented == [], f"{type(table).__name__}: every key needs a docstring"


def test_render_keeps_lists_of_tables_and_long_docs_valid(tmp_path):
    long = "a-very-long-host-name-" + "x" * 40
    cfg = config.validate({"dhcp": {"reservations": [{"mac": "52:54:00:00:00:01", "ip": "10.0.0.5",
                                                      "hostname": long}]}})
    assert config.load(_write(tmp_path, config.render(cfg))) == cfg


def test_example_config_is_the_documented_defaults():
    """etc/appliance.example.toml is `appliance config show --defaults`: keep them in sync."""
    from pathlib import Path

    example = Path(__file__).parents[2] / "etc" / "appliance.example.toml"
    assert example.read_text() == config.render(config.validate({}))


@pytest.mark.parametrize("table,needs", [("jobs", "osis"), ("jobs", "xmpp"), ("monitoring", "osis"),
                                         ("monitoring", "xmpp"), ("tasklets", "xmpp")])
def test_a_component_without_the_tables_it_needs_is_refused_naming_them(table, needs):
    tables = {name: {"enabled": True} for name in ("osis", "xmpp", table) if name != needs}
    with pytest.raises(config.ConfigError, match=rf"^{table}\.enabled: .* needs \[{needs}\] enabled$") as info:
        config.validate(tables)
    assert len(info.value.problems) == 1

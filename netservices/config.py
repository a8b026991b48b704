"""What the settings of every network service are made of.

Each service has its own settings table, a frozen dataclass in `netservices/NAME/config.py`
built from the types here. They are plain data: the application loads them from its TOML
file (`appliance.config`) and hands each service its own table, the way smee gives each
service its own config struct. Field docstrings are the documentation `appliance config
show` prints.

Validators raise `ValueError` with a phrase that follows the offending value, so that the
loader can report `dhcp.range[1]: "10.0.0.300" is not an IPv4 address`.
"""

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, PlainSerializer, PlainValidator, StrictInt, StrictStr

SECTION = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class SettingError(ValueError):
    """A problem with one key of a section, found by a check that spans several keys."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key


def _parser(kind: str, parse):
    def validate(value: Any):
        if not isinstance(value, str):
            raise ValueError(f"is not {kind} (write it as a string)")
        try:
            return parse(value)
        except ValueError:
            raise ValueError(f"is not {kind}") from None

    return PlainValidator(validate)


def _interface_name(value: str) -> str:
    # Linux: IFNAMSIZ is 16 with the NUL; no '/', no whitespace, not "." or "..".
    if value and (len(value) > 15 or value in (".", "..") or re.search(r"[/\s:]", value)):
        raise ValueError("is not a network interface name")
    return value


IPv4 = Annotated[IPv4Address, _parser("an IPv4 address", IPv4Address), PlainSerializer(str)]
IPv4Net = Annotated[
    IPv4Network,
    _parser("an IPv4 network such as 10.0.0.0/24", lambda v: IPv4Network(v, strict=True)),
    PlainSerializer(str),
]
ListenAddress = Annotated[
    IPv4Address | IPv6Address,
    _parser("an IP address", ipaddress.ip_address),
    PlainSerializer(str),
]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Interface = Annotated[str, Field(strict=True), AfterValidator(_interface_name)]
Seconds = Annotated[StrictInt, Field(ge=1)]


# Host names and domains (RFC 1123 labels).
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _hostname(value: str) -> str:
    if not _LABEL.fullmatch(value):
        raise ValueError("is not a host name (letters, digits and inner hyphens, 63 at most)")
    return value


def _domain(value: str) -> str:
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise ValueError("is not a DNS domain name")
    return value


Hostname = Annotated[StrictStr, AfterValidator(_hostname)]
DomainName = Annotated[StrictStr, AfterValidator(_domain)]

"""The appliance's one TOML config file: its schema, loading, validation and rendering.

One table per component, each a frozen dataclass with documented defaults. A value that
is wrong stops start-up with `ConfigError`, whose lines name the key and the value:
``dhcp.range[1]: "10.0.0.300" is not an IPv4 address``. Only the entry points read files
and environment variables; everything else is handed a `Config`.
"""

import dataclasses
import difflib
import json
import os
import tomllib
import typing
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import (
    Field,
    StrictBool,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from appliance.fabric.config import JobsConfig, MonitoringConfig, TaskletsConfig, XmppConfig
from netservices.config import SECTION, DomainName, Hostname, IPv4, ListenAddress, Port, SettingError
from netservices.dhcp.config import DhcpConfig
from netservices.dns.config import DnsConfig
from netservices.smb.config import SmbConfig
from netservices.tftp.config import TftpConfig

DEFAULT_PATH = Path("/etc/appliance/appliance.toml")
ENV_VAR = "APPLIANCE_CONFIG"



class ConfigError(Exception):
    """The config cannot be used; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, config=SECTION)
class NodeConfig:
    """This appliance itself."""

    name: Hostname = "appliance"
    """Host name of the appliance; its DNS name is NAME.DOMAIN."""
    domain: DomainName = "rack.internal"
    """DNS domain the appliance serves and enrolls machines into."""
    address: IPv4 | None = None
    """The appliance's address on the rack segment (next-server, boot URLs)."""
    state_dir: StrictStr = "/var/lib/appliance"
    """Where leases, objects and rendered files are kept."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Least severe log level written to stderr."""


@dataclass(frozen=True, config=SECTION)
class HttpConfig:
    """HTTP boot: kernels, initrds and images for iPXE and UEFI HTTP boot, under /assets/."""

    enabled: StrictBool = False
    """Serve the boot files over HTTP."""
    root: StrictStr = "/var/lib/appliance/http"
    """Directory of static boot files and images; nothing outside it is served."""
    nginx: StrictBool = False
    """Run nginx in front (the node image): it serves `root` and proxies the rest to the
    app server. Otherwise the app server serves `root` itself (labs)."""
    listen: ListenAddress = IPv4Address("127.0.0.1")
    """Address nginx listens on."""
    port: Port = 80
    """Port nginx listens on."""
    nginx_user: StrictStr = "www-data"
    """Account nginx's workers run as; it must be able to read `root`."""


@dataclass(frozen=True, config=SECTION)
class AppserverConfig:
    """The API (REST, XML-RPC, AMF), boot scripts and metrics, over HTTP."""

    enabled: StrictBool = True
    """Serve the API."""
    listen: ListenAddress = IPv4Address("127.0.0.1")
    """Address to listen on."""
    port: Port = 8000
    """TCP port to listen on."""
    transports: tuple[Literal["rest", "xmlrpc", "amf"], ...] = ("rest", "xmlrpc", "amf")
    """Transports to serve: REST under /api/v1/, XML-RPC at /RPC2, AMF at /amf."""
    read_open: StrictBool = True
    """Let calls that only read be made without credentials (the management network)."""
    token: StrictStr = ""
    """Bearer token that allows every call; empty: none. Writes need a token or a user."""
    username: StrictStr = ""
    """User name for HTTP basic authentication; empty: none."""
    password: StrictStr = ""
    """Its password."""
    enroll_token: StrictStr = ""
    """Token the enrollment image presents (kernel argument appliance.token); empty:
    enrollment is refused."""
    enroll_hostname: StrictStr = "node-{mac6}"
    """Host name given to a new machine: {mac6} (last 6 hex digits of its boot MAC),
    {serial} (SMBIOS serial) or {uuid8} (first 8 of its UUID), lower-cased."""
    enroll_action: Literal["poweroff", "reboot", "wait"] = "reboot"
    """What the enrollment image does once enrolled (reboot: boot again, now known)."""

    @model_validator(mode="after")
    def _user_has_password(self):
        if self.username and not self.password:
            raise SettingError("password", "must be set when username is")
        try:
            self.enroll_hostname.format(mac6="a", serial="a", uuid8="a")
        except (KeyError, IndexError, ValueError):
            raise SettingError("enroll_hostname", "may only use {mac6}, {serial} and {uuid8}") from None
        return self


@dataclass(frozen=True, config=SECTION)
class OsisConfig:
    """Object storage (Thrift objects in a key/value store) and its SQL views."""

    enabled: StrictBool = False
    """Open the object store."""
    kv: Literal["sqlite", "etcd"] = "sqlite"
    """Key/value backend: embedded SQLite, or etcd shared by several appliances."""
    etcd_endpoints: tuple[StrictStr, ...] = ()
    """etcd client URLs, e.g. ["http://10.0.0.2:2379"], when kv is "etcd"."""
    views: Literal["sqlite", "postgresql"] = "sqlite"
    """Where the queryable views are kept."""
    postgresql_dsn: StrictStr = ""
    """libpq connection string, when views is "postgresql"."""

    @model_validator(mode="after")
    def _backends_named(self):
        if self.kv == "etcd" and not self.etcd_endpoints:
            raise SettingError("etcd_endpoints", 'must be set when kv is "etcd"')
        if self.views == "postgresql" and not self.postgresql_dsn:
            raise SettingError("postgresql_dsn", 'must be set when views is "postgresql"')
        return self


def _table(cls):
    return Field(default_factory=cls)


# component -> (what it is, the tables it cannot run without)
NEEDS = {"jobs": ("the workflow engine", ("osis", "xmpp")),
         "monitoring": ("the monitoring scheduler", ("osis", "xmpp")),
         "tasklets": ("the appliance's agent", ("xmpp",))}


@dataclass(frozen=True, config=SECTION)
class Config:
    """The whole appliance config: one table per component."""

    node: NodeConfig = _table(NodeConfig)
    osis: OsisConfig = _table(OsisConfig)  # first: components start in this order
    dhcp: DhcpConfig = _table(DhcpConfig)
    dns: DnsConfig = _table(DnsConfig)
    tftp: TftpConfig = _table(TftpConfig)
    http: HttpConfig = _table(HttpConfig)
    smb: SmbConfig = _table(SmbConfig)
    appserver: AppserverConfig = _table(AppserverConfig)
    xmpp: XmppConfig = _table(XmppConfig)
    jobs: JobsConfig = _table(JobsConfig)
    monitoring: MonitoringConfig = _table(MonitoringConfig)
    tasklets: TaskletsConfig = _table(TaskletsConfig)

    @model_validator(mode="after")
    def _needs(self):
        for name, (what, needed) in NEEDS.items():
            missing = [n for n in needed if getattr(self, name).enabled and not getattr(self, n).enabled]
            if missing:
                raise SettingError(f"{name}.enabled", f"{what} needs [{missing[0]}] enabled")
        return self

    def components(self) -> dict[str, Any]:
        """The component tables (all but [node]) by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "node"}

    def enabled(self) -> list[str]:
        return [name for name, table in self.components().items() if table.enabled]

    def with_only(self, names: list[str]) -> "Config":
        """The same config with exactly `names` enabled, validated again."""
        unknown = [n for n in names if n not in self.components()]
        if unknown:
            raise ConfigError(
                [f"--only: unknown component {n!r}{_did_you_mean(n, self.components())}" for n in unknown]
            )
        data = _ADAPTER.dump_python(self, mode="json", exclude_none=True)
        for name in self.components():
            data[name]["enabled"] = name in names
        return validate(data)


_ADAPTER = TypeAdapter(Config)


def validate(data: dict[str, Any]) -> Config:
    """Build a `Config` from parsed TOML, or raise `ConfigError` naming every bad key."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def load(path: str | os.PathLike) -> Config:
    """Read and validate one config file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"]) from None
    return validate(data)


def locate(path: str | None, environ: dict[str, str] = os.environ) -> Path:
    """The config file to use: -c, then $APPLIANCE_CONFIG, then the default path."""
    return Path(path or environ.get(ENV_VAR) or DEFAULT_PATH)


def _key(loc: tuple) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _fields_at(loc: tuple) -> list[str]:
    """Names of the keys that the table at `loc` accepts (none known: no suggestion)."""
    cls: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list of tables: its type is the list's
        cls = _table_type({f.name: f.type for f in dataclasses.fields(cls)}.get(part))
        if cls is None:
            return []
    return [f.name for f in dataclasses.fields(cls)]


def _table_type(tp: Any) -> Any:
    """The dataclass inside a field type such as `X`, `tuple[X, ...]` or `X | None`."""
    if dataclasses.is_dataclass(tp):
        return tp
    return next((t for t in map(_table_type, typing.get_args(tp)) if t is not None), None)


def _describe(err: dict) -> str:
    loc, value = err["loc"], err.get("input")
    error = err.get("ctx", {}).get("error")
    if isinstance(error, SettingError):
        return f"{_key(loc + (error.key,))}: {error}"
    if err["type"] == "unexpected_keyword_argument":
        what = "table" if len(loc) == 1 else "key"
        return f"{_key(loc)}: unknown {what}{_did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))}"
    if err["type"] in ("dataclass_type", "dataclass_args_type"):
        return f"{_key(loc)}: must be a table"
    if err["type"] == "missing":
        return f"{_key(loc)}: is required"
    if err["type"] == "value_error":
        problem = str(error)
    else:
        problem = _PHRASES.get(err["type"]) or err["msg"].replace("Input should be", "should be")
    return f"{_key(loc)}: {_render(value)} {problem}"


_PHRASES = {
    "bool_type": "should be true or false",
    "int_type": "should be a whole number",
    "string_type": "should be a string",
    "tuple_type": "should be a list",
}


def _render(value: Any) -> str:
    return json.dumps(value, default=str)


def render(cfg: Config) -> str:
    """The effective config as TOML, every key with its documentation as a comment."""
    data = _ADAPTER.dump_python(cfg, mode="json")
    out = []
    for section, table in data.items():
        cls = type(getattr(cfg, section))
        out += [f"[{section}]", _comment(cls.__doc__)]
        for name, value in table.items():
            out.append(_comment(cls.__pydantic_fields__[name].description))
            out.append(_toml_line(name, value))
        out.append("")
    return "\n".join(out)


def _comment(text: str | None) -> str:
    return "\n".join(f"# {line.strip()}".rstrip() for line in (text or "").splitlines())


def _toml_line(name: str, value: Any) -> str:
    """`name = value`, lists of tables written inline so that they stay in their table."""
    if value is None:
        return f"# {name} = (unset)"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ", ".join("{ " + ", ".join(tomli_w.dumps({k: v}).strip() for k, v in item.items()) + " }"
                          for item in value)
        return f"{name} = [{items}]"
    return tomli_w.dumps({name: value}).strip()

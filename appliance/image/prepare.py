"""What the appliance's config needs on the node, made ready before it starts (node image, every boot).

Run as `python -m appliance.image.prepare` (ExecStartPre of appliance.service):

- directories: [node] state_dir, [tftp] root, [http] root;
- the enrollment image in [http] root/enroll/, where the boot scripts point, copied from
  /usr/share/appliance/enroll/ when it is missing or another build (build.json differs);
- the local servers the config asks for, enabled and started with systemctl:
  PostgreSQL when [osis] views = "postgresql" with a DSN on this node (its role and
  database are created with the DSN's password), ejabberd when [xmpp] accounts =
  "ejabberd" (serving the [node] domain). They stay disabled otherwise. nginx is not
  one of them: the http component runs it itself when [http] nginx = true.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from appliance import config

ENROLL_IMAGE = Path("/usr/share/appliance/enroll")
EJABBERD_YML = Path("/etc/ejabberd/ejabberd.yml")
PSQL_AS_POSTGRES = ["runuser", "-u", "postgres", "--", "psql"]
_LOCAL = {"localhost", "127.0.0.1", "::1"}
# psql variables keep every name and the password quoted (%I, %L); \gexec runs the result.
_POSTGRES_SQL = r"""SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'role', :'password')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'dbname', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname') \gexec
"""


def say(text: str) -> None:
    print(f"prepare: {text}", flush=True)


def _conninfo(dsn: str) -> dict:
    from psycopg.conninfo import conninfo_to_dict  # only when PostgreSQL is configured: a slow import

    return conninfo_to_dict(dsn)


def local_dsn(dsn: str) -> bool:
    """Whether a libpq DSN names a server on this node (no host, a socket directory, loopback)."""
    host = _conninfo(dsn).get("host") or ""
    return all(h == "" or h.startswith("/") or h in _LOCAL for h in host.split(","))


def wanted_units(cfg: config.Config) -> list[str]:
    """The systemd units of the local servers this config asks for."""
    units = []
    if cfg.osis.enabled and cfg.osis.views == "postgresql" and local_dsn(cfg.osis.postgresql_dsn):
        units.append("postgresql.service")
    if cfg.xmpp.accounts == "ejabberd":
        units.append("ejabberd.service")
    return units


def directories(cfg: config.Config) -> list[Path]:
    dirs = [Path(cfg.node.state_dir)]
    if cfg.tftp.enabled:
        dirs.append(Path(cfg.tftp.root))
    if cfg.http.enabled:
        dirs.append(Path(cfg.http.root))
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def install_enroll_image(http_root: Path, source: Path = ENROLL_IMAGE) -> bool:
    """Copy the image's enrollment image under [http] root unless the same build is there."""
    target = http_root / "enroll"
    if not (source / "build.json").is_file():
        return False
    if (target / "build.json").is_file() and (target / "build.json").read_bytes() == (
            source / "build.json").read_bytes():
        return False
    target.mkdir(parents=True, exist_ok=True)
    (target / "build.json").unlink(missing_ok=True)  # last in: a half copy is never "the same build"
    for name in sorted(p.name for p in source.iterdir() if p.name != "build.json"):
        shutil.copyfile(source / name, target / name)
    shutil.copyfile(source / "build.json", target / "build.json")
    return True


def postgres_role(dsn: str, psql: list[str] = PSQL_AS_POSTGRES) -> None:
    """Create (or update the password of) the DSN's role and create its database, as the
    server's superuser through `psql`."""
    params = _conninfo(dsn)
    role = params.get("user")
    if not role:
        return
    variables = {"role": role, "password": params.get("password") or "",
                 "dbname": params.get("dbname") or role}
    argv = [*psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    for name, value in variables.items():
        argv += ["-v", f"{name}={value}"]
    proc = subprocess.run(argv, input=_POSTGRES_SQL, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"psql: {proc.stderr.strip()}")


def ejabberd_hosts(text: str, domain: str) -> str:
    """ejabberd.yml with its `hosts:` list set to the one domain the appliance serves."""
    block = re.compile(r"^hosts:\n(?:[ \t]+-.*\n|[ \t]*\n)*", re.MULTILINE)
    replacement = f'hosts:\n  - "{domain}"\n\n'
    if not block.search(text):
        return replacement + text
    return block.sub(lambda _: replacement, text, count=1)


def start_units(cfg: config.Config, units: list[str]) -> None:
    if "ejabberd.service" in units and EJABBERD_YML.is_file():
        EJABBERD_YML.write_text(ejabberd_hosts(EJABBERD_YML.read_text(), cfg.node.domain))
    for unit in units:
        subprocess.run(["systemctl", "enable", "--now", unit], check=True, timeout=300)
        say(f"{unit} enabled and started")
    if "postgresql.service" in units:
        postgres_role(cfg.osis.postgresql_dsn)
        say("PostgreSQL role and database ready")


def main(argv: list[str] | None = None) -> int:
    cfg = config.load(config.locate(argv[0] if argv else None))
    directories(cfg)
    if cfg.http.enabled and install_enroll_image(Path(cfg.http.root)):
        say(f"enrollment image installed in {Path(cfg.http.root) / 'enroll'}")
    try:
        start_units(cfg, wanted_units(cfg))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        say(f"cannot start a server the config asks for: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except config.ConfigError as exc:  # the appliance itself reports it the same way next
        print("prepare: config: " + "; ".join(exc.problems), file=sys.stderr)
        sys.exit(2)

"""The `appliance` command: the only place that reads arguments, files and the environment.

Exit status: 0 done, 1 a component could not start or stop, 2 a bad config or usage.
"""

import argparse
import asyncio
import os
import signal
import sys

from appliance import __version__, components, config, log, nginx
from appliance.image import commands as image_commands
from appliance.jobs import cli as jobs_cli
from appliance.osis import commands as osis_commands
from appliance.osis.schema import SchemaError
from appliance.osis.store import StoreError
from appliance.runner import StartupError, Supervisor
from appliance.services import commands as machines_commands
from appliance.tasklets import commands as tasklets_commands

EXIT_FAILURE = 1
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run":
        log.setup("warning")
    try:
        return args.func(args)
    except config.ConfigError as exc:
        print(f"appliance: config {args.config_path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if not args.config and exc.problems[0].startswith("cannot read"):
            print(f"  (name a file with -c FILE or ${config.ENV_VAR})", file=sys.stderr)
        return EXIT_CONFIG
    except SchemaError as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"appliance: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="appliance", description=(
        "PyLabs appliance: DHCP, DNS, TFTP, HTTP boot and SMB for a rack; PXE-boots its "
        "machines, enrolls them and keeps a command channel to them."))
    top.add_argument("--version", action="version", version=f"appliance {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the enabled components in the foreground")
    _config_option(run)
    run.add_argument("--only", metavar="A,B", type=_names,
                     help="run only these components (e.g. dhcp,dns), whatever `enabled` says")
    run.set_defaults(func=cmd_run)

    cfg = sub.add_parser("config", help="check or show the config file")
    cfg_sub = cfg.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = cfg_sub.add_parser("check", help="validate the config and exit 0, or 2 naming each bad key")
    _config_option(check)
    check.set_defaults(func=cmd_config_check)
    show = cfg_sub.add_parser("show", help="print the effective config, defaults filled in")
    _config_option(show)
    show.add_argument("--defaults", action="store_true", help="ignore any file: print the defaults")
    show.set_defaults(func=cmd_config_show)
    machines_commands.add_commands(sub, _config_option)
    osis_commands.add_commands(sub, _config_option)
    tasklets_commands.add_commands(sub, _config_option)
    jobs_cli.add_commands(sub, _config_option)
    lab = sub.add_parser("lab", help="a lab in network namespaces: the appliance and QEMU machines")
    lab_sub = lab.add_subparsers(dest="action", required=True, metavar="ACTION")
    lab_up = lab_sub.add_parser("up", help="start the lab, PXE-boot the machines, wait until they enrolled")
    lab_up.add_argument("--vms", type=int, default=2, help="machines to boot (default 2)")
    lab_up.add_argument("--firmware", choices=["bios", "uefi"], default="bios")
    lab_up.add_argument("--loader", choices=["ipxe", "pxelinux"], default="ipxe",
                        help="BIOS boot loader from DHCP: iPXE's script (default), or pxelinux.0 over TFTP")
    lab_up.add_argument("--timeout", type=float, default=300, help="seconds to wait for enrollment")
    lab_up.set_defaults(func=lambda a: _lab("up", a.vms, a.firmware, a.timeout, a.loader))
    lab_sub.add_parser("status", help="the lab's appliance, machines and inventory").set_defaults(
        func=lambda a: _lab("status"))
    lab_sub.add_parser("down", help="stop everything the lab started, delete its namespaces").set_defaults(
        func=lambda a: _lab("down"))
    site = sub.add_parser("nginx-config", help="print the nginx site that fronts the app server")
    _config_option(site)
    site.set_defaults(func=cmd_nginx_config)
    image = sub.add_parser("image", help="build the images the appliance serves")
    image_sub = image.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = image_sub.add_parser("build", help="build an image from its recipe in image/, cached by its hash")
    build.add_argument("name", choices=["enroll", "node"], help=(
        "enroll: the enrollment netboot image; node: the flashable node image (raw, qcow2, Vagrant box)"))
    build.add_argument("--output", metavar="DIR", help="where to put it (default: [http].root/NAME)")
    build.add_argument("--formats", metavar="LIST", default="raw,qcow2,box",
                       help="node image outputs, comma-separated: raw, qcow2, box (default: all)")
    build.add_argument("--force", action="store_true",
                       help="rebuild even when up to date, downloading the packages again")
    _config_option(build)
    build.set_defaults(func=cmd_image_build)
    return top


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help=(
        f"config file (default: ${config.ENV_VAR}, else {config.DEFAULT_PATH})"))


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def load_config(args) -> config.Config:
    args.config_path = str(config.locate(args.config))
    return config.load(args.config_path)


def cmd_config_check(args) -> int:
    cfg = load_config(args)
    names = components.check(cfg)
    print(f"{args.config_path}: ok; components: {', '.join(names) or 'none'}")
    return 0


def cmd_config_show(args) -> int:
    args.config_path = "(defaults)"
    print(config.render(config.validate({}) if args.defaults else load_config(args)), end="")
    return 0


def _lab(action: str, *args) -> int:
    from appliance.lab import lab  # QEMU and namespaces: only for this command

    try:
        return getattr(lab, action)(*args)
    except lab.LabError as exc:
        print(f"appliance: lab: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def cmd_nginx_config(args) -> int:
    print(nginx.site(load_config(args)), end="")
    return 0


def cmd_image_build(args) -> int:
    # a build machine needs no appliance config: without one, the defaults
    named = args.config or os.environ.get(config.ENV_VAR) or config.DEFAULT_PATH.exists()
    cfg = load_config(args) if named else config.validate({})
    return image_commands.build(cfg, args.name, args.output, args.force, args.formats)


def cmd_run(args) -> int:
    cfg = load_config(args)
    if args.only is not None:
        cfg = cfg.with_only(args.only)
    components.check(cfg)
    log.setup(cfg.node.log_level)
    status = asyncio.run(_serve(cfg))
    if status is None:  # a component is stuck in a thread: do not wait for it
        sys.stderr.flush()
        os._exit(EXIT_FAILURE)
    return status


async def _serve(cfg: config.Config) -> int | None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor: Supervisor
    runtime = components.Runtime(status=lambda: supervisor.status())
    supervisor = Supervisor(components.build(cfg, runtime))
    try:
        clean = await supervisor.run(stop)
    except StartupError as exc:
        print(f"appliance: cannot start {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0 if clean else None


if __name__ == "__main__":
    sys.exit(main())

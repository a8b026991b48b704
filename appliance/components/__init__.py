"""The registry of components that `appliance run` can start.

A component module registers a factory under the name of its config table:

    @register("dns")
    def build(cfg: Config, runtime: Runtime) -> Component: ...

Every module of this package is imported when the registry is first asked: adding a
component is adding its module, nothing else.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.config import Config, ConfigError
from appliance.runner import Component


@dataclass
class Runtime:
    """What components share in the running appliance: the components' status, the
    object store once the osis component has opened it, and the XMPP controller once the
    xmpp component is connected (None until then). The controller
    (appliance.fabric.controller.Controller) offers `await send_job(agent_jid, job,
    timeout) -> agent.protocol.JobResult` (agent.dispatch.JobError on failure) and
    `online() -> set[str]`, the bare JIDs of the agents online now."""

    status: Callable[[], dict[str, dict]]
    store: Any = None
    controller: Any = None


Factory = Callable[[Config, Runtime], Component]
_FACTORIES: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def add(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory

    return add


def available() -> dict[str, Factory]:
    """Every component this version can run, by name."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(_FACTORIES)


def check(cfg: Config) -> list[str]:
    """The names of the components to start; ConfigError for any this version lacks."""
    factories = available()
    missing = [n for n in cfg.enabled() if n not in factories]
    if missing:
        raise ConfigError([f"{n}.enabled: this version has no {n} component yet" for n in missing])
    return cfg.enabled()


def build(cfg: Config, runtime: Runtime) -> list[Component]:
    """One component per enabled table, in the order of the config's tables."""
    factories = available()
    return [factories[name](cfg, runtime) for name in check(cfg)]

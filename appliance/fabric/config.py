"""The config tables of the agent fabric: [xmpp], [jobs], [monitoring] and [tasklets]
(part of the one config file; appliance.config puts them together)."""

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

from netservices.config import SECTION, Hostname, Port, Seconds


@dataclass(frozen=True, config=SECTION)
class XmppConfig:
    """The appliance on the XMPP fabric: its controller account, and agents' accounts."""

    enabled: StrictBool = False
    """Connect to the XMPP server as the controller (the workflow engine and the monitoring
    scheduler send their jobs over this connection)."""
    host: StrictStr = "127.0.0.1"
    """XMPP server to connect to."""
    port: Port = 5222
    """Its client port."""
    user: Hostname = "appliance"
    """The controller's account: its JID is USER@DOMAIN ([node] domain). Agents take jobs
    only from this JID."""
    password: StrictStr = ""
    """The controller's password; empty: generated at first start and kept in
    STATE_DIR/xmpp-password."""
    accounts: Literal["none", "ejabberd", "prosody"] = "none"
    """How XMPP accounts are made and removed: "ejabberd" (ejabberdctl) or "prosody"
    (prosodyctl) on this node, for the controller and for every enrolled machine's agent;
    "none": by hand."""
    ctl: tuple[StrictStr, ...] = ()
    """The ejabberdctl or prosodyctl command with any leading arguments (e.g.
    ["ejabberdctl", "--config-dir", "/etc/ejabberd"]); empty: the plain command on PATH."""


@dataclass(frozen=True, config=SECTION)
class JobsConfig:
    """The workflow engine: jobs for agents, kept in OSIS, dispatched over XMPP."""

    enabled: StrictBool = False
    """Run the workflow engine (needs [osis] and [xmpp])."""
    attempts: Annotated[StrictInt, Field(ge=1, le=100)] = 1
    """Runs of a job at most: above 1, a job whose run failed is run again."""
    retry_delay: Seconds = 5
    """Seconds before the next run (doubling), or before a busy agent is asked again."""
    queue_timeout: Seconds = 86400
    """Seconds a job may wait for its agent to be online before it is timed out."""


@dataclass(frozen=True, config=SECTION)
class MonitoringConfig:
    """Monitoring tasklets run on a schedule; samples exported as Prometheus metrics."""

    enabled: StrictBool = False
    """Run the monitoring scheduler (needs [osis] and [xmpp]): the tasklets tagged
    "monitor" on every online agent, their samples kept in OSIS and exported at /metrics."""
    interval: Seconds = 60
    """Seconds between two runs of the monitoring tasklets on one agent; the agents are
    spread evenly over the interval (each at a fixed phase of it, from its JID)."""
    timeout: Seconds = 30
    """Seconds one agent's monitoring job may run; a run still going at its next slot
    makes it skip that slot (one run per agent at a time)."""
    concurrency: Annotated[StrictInt, Field(ge=1, le=10000)] = 50
    """Monitoring jobs in flight at once, over all agents."""
    retention: Seconds = 3600
    """Seconds a sample is kept without a newer value (an agent gone offline); OSIS holds
    the latest value of each series only."""


@dataclass(frozen=True, config=SECTION)
class TaskletsConfig:
    """The tasklet engine: of `appliance tasklets`, and of the appliance's own agent."""

    enabled: StrictBool = False
    """Run the appliance's own agent, USER-agent@DOMAIN (Agent "agent-appliance"; needs [xmpp])."""
    builtin: StrictBool = True
    """Load the built-in tasklets (facts, ping, command) before the directories in `paths`."""
    paths: tuple[StrictStr, ...] = ()
    """Directories of tasklet files (*.py), loaded in this order; a tasklet in a later one
    replaces an earlier one (or a built-in) of the same NAME."""
    timeout: Seconds = 60
    """Seconds a tasklet may run before it and every process it started are killed."""

"""XMPP accounts for the controller and for every enrolled machine's agent.

The accounts are made and removed on the XMPP server by `appliance.fabric.accountctl`
(ejabberdctl or prosodyctl, as `[xmpp] accounts` says).

`sync(store, accounts, ledger_path)` makes the accounts match the Agent objects in OSIS,
then follows the store's changes: an enrolled machine's agent gets its account with its
stored password, a deleted Agent (deleting a machine deletes its Agent) loses its
account. Only accounts this appliance made for an Agent are ever removed: it keeps them
in a ledger, STATE_DIR/xmpp-accounts.json (per Agent guid: the JID and a SHA-256 of the
password; replaced atomically), so that an Agent deleted while the appliance was down is
cleaned up at the next start, a password changed in OSIS is set again, and accounts made
by hand are left alone. When a command failed, everything is compared again (one listing
per host) RETRY seconds later.

`controller_password(cfg)` is the controller's password ([xmpp] password, else the file
STATE_DIR/xmpp-password, made 0600 at first use); `run_accounts(cfg, store)` ensures the
controller's account and then runs `sync` until cancelled. The appliance's own agent (the
tasklets component) is `agent_jid(cfg)` with `agent_password(cfg)` (STATE_DIR/
xmpp-agent-password); its account is made by `sync` like any other Agent's.
"""

import asyncio
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from appliance.fabric.accountctl import AccountError, Accounts, Ejabberd, Prosody, split_jid
from appliance.log import fields
from appliance.osis.kv import Compacted, StoreError
from appliance.osis.store import NotFound, ObjectStore

__all__ = ["AccountError", "Accounts", "Ejabberd", "Prosody", "agent_jid", "agent_password", "controller_jid",
           "controller_password", "ensure_controller", "generated_password", "provisioner", "run_accounts",
           "sync"]

log = logging.getLogger("appliance.accounts")

RETRY = 30.0
PASSWORD_FILE = "xmpp-password"
AGENT_PASSWORD_FILE = "xmpp-agent-password"
LEDGER_FILE = "xmpp-accounts.json"


def provisioner(cfg) -> Accounts | None:
    """The account admin `[xmpp] accounts` names, None for "none"."""
    kinds = {"ejabberd": Ejabberd, "prosody": Prosody}
    kind = kinds.get(cfg.xmpp.accounts)
    return kind(cfg.xmpp.ctl or None) if kind else None


# --- the controller's account ---------------------------------------------------------------


def controller_jid(cfg) -> str:
    """The appliance's own bare JID on the fabric: [xmpp] user @ [node] domain."""
    return f"{cfg.xmpp.user}@{cfg.node.domain}".lower()


def controller_password(cfg) -> str:
    """[xmpp] password, else the one kept in STATE_DIR/xmpp-password (made 0600 at first
    use; two processes that race both get the same one)."""
    if cfg.xmpp.password:
        return cfg.xmpp.password
    return generated_password(Path(cfg.node.state_dir) / PASSWORD_FILE, "or set [xmpp] password")


def agent_jid(cfg) -> str:
    """The bare JID of the appliance's own agent (the tasklets component): [xmpp] user-agent
    @ [node] domain."""
    return f"{cfg.xmpp.user}-agent@{cfg.node.domain}".lower()


def agent_password(cfg) -> str:
    """The appliance's own agent's password, kept in STATE_DIR/xmpp-agent-password (made
    0600 at first use)."""
    return generated_password(Path(cfg.node.state_dir) / AGENT_PASSWORD_FILE)


def generated_password(path: Path, hint: str = "") -> str:
    """The password kept in `path`, made (random, 0600) at first use; two processes that
    race both get the same one. AccountError if the file is empty."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces the one another process wrote first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    password = path.read_text().strip()
    if not password:
        raise AccountError(f"{path} is empty: delete it (a new one is made){' ' + hint if hint else ''}")
    return password


def ensure_controller(cfg, accounts: Accounts) -> None:
    """Make the controller's account exist with its password."""
    user, host = split_jid(controller_jid(cfg))
    accounts.ensure(user, host, controller_password(cfg))
    log.info("accounts.controller", extra=fields(jid=f"{user}@{host}"))


# --- agents' accounts -----------------------------------------------------------------------


def _digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class Ledger:
    """The accounts made for Agents: guid -> {"jid", "digest"}, kept in a JSON file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
            entries = data["accounts"]
            if all(isinstance(e.get("jid"), str) and isinstance(e.get("digest"), str)
                   for e in entries.values()):
                return entries
            raise ValueError("an entry lacks jid or digest")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("accounts.ledger_unreadable", extra=fields(path=self.path, error=exc))
            return {}  # accounts are made again; ones of Agents deleted meanwhile stay

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({"version": 1, "accounts": self.entries}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class AccountSync:
    """Keeps the accounts in step with the Agent objects. Blocking: run it in a thread."""

    def __init__(self, store: ObjectStore, accounts: Accounts, ledger: Ledger,
                 protect: Iterable[str] = ()):
        self.store, self.accounts, self.ledger = store, accounts, ledger
        self.protect = {j.lower() for j in protect}
        self.failed: set[str] = set()  # Agent guids whose command failed: tried again
        self.stopping = threading.Event()  # set: finish the command under way, start no other
        self._warned: set[str] = set()

    def resync(self) -> int:
        """Compare every Agent with the server's accounts and the ledger; the store
        revision from which changes are still to be applied."""
        revision = self.store.revision()
        agents = {s.obj.guid: s.obj for s in self.store.scan("agent")}
        jids = [a.jid for a in agents.values()] + [e["jid"] for e in self.ledger.entries.values()]
        hosts = {_host_of(jid) for jid in jids}
        existing = {}
        for host in hosts - {None}:
            try:
                existing[host] = self.accounts.users(host)
            except AccountError as exc:  # its agents are tried again at the next resync
                log.error("accounts.list_failed", extra=fields(host=host, error=exc))
        self.failed.clear()
        for guid in [g for g in self.ledger.entries if g not in agents]:
            self._forget(guid)
        for agent in agents.values():
            self._keep(agent, existing)
        log.info("accounts.synced", extra=fields(agents=len(agents), revision=revision,
                                                 failed=len(self.failed)))
        return revision

    def apply(self, guids: Iterable[str]) -> None:
        """Bring the accounts of these Agents (changed or deleted) up to date."""
        for guid in guids:
            try:
                agent = self.store.get("agent", guid).obj
            except NotFound:
                self._forget(guid)
            else:
                self._keep(agent, None)

    def _keep(self, agent, existing: dict[str, set[str]] | None) -> None:
        if self.stopping.is_set():
            return
        try:
            user, host = split_jid(agent.jid)
        except AccountError as exc:
            log.warning("accounts.bad_jid", extra=fields(agent=agent.guid, error=exc))
            return
        jid = f"{user}@{host}"
        if jid in self.protect or not agent.password:
            if agent.guid not in self._warned:  # once: its status changes with every presence
                self._warned.add(agent.guid)
                log.warning("accounts.skipped", extra=fields(agent=agent.guid, jid=jid, reason=(
                    "it is the controller's JID" if jid in self.protect else "the Agent has no password")))
            return
        entry = self.ledger.entries.get(agent.guid)
        if entry and entry["jid"] != jid:  # renamed: its old account goes first
            self._forget(agent.guid)
            if agent.guid in self.ledger.entries:
                return
            entry = None
        if existing is not None and host not in existing:
            self.failed.add(agent.guid)  # the server did not list that host
            return
        present = None if existing is None else user in existing[host]
        if entry and entry["digest"] == _digest(agent.password) and present is not False:
            return
        if not self._run(agent.guid, "ensure", self.accounts.ensure, user, host, agent.password):
            return
        self.ledger.entries[agent.guid] = {"jid": jid, "digest": _digest(agent.password)}
        self.ledger.save()

    def _forget(self, guid: str) -> None:
        entry = self.ledger.entries.get(guid)
        if entry is None or self.stopping.is_set():
            return
        jid = entry["jid"]
        if jid not in self.protect and not self._used_by_another(jid, guid):
            if not self._run(guid, "remove", self.accounts.remove, *split_jid(jid)):
                return
        del self.ledger.entries[guid]
        self.ledger.save()

    def _used_by_another(self, jid: str, guid: str) -> bool:
        return any(s.obj.guid != guid for s in self.store.query("agent", [("jid", "=", jid)]))

    def _run(self, guid: str, action: str, call, user: str, host: str, *args) -> bool:
        try:
            call(user, host, *args)
        except AccountError as exc:
            self.failed.add(guid)
            log.error(f"accounts.{action}_failed", extra=fields(agent=guid, jid=f"{user}@{host}", error=exc))
            return False
        self.failed.discard(guid)
        log.info(f"accounts.{action}", extra=fields(agent=guid, jid=f"{user}@{host}"))
        return True


def _host_of(jid: str) -> str | None:
    try:
        return split_jid(jid)[1]
    except AccountError:
        return None


async def sync(store: ObjectStore, accounts: Accounts, ledger_path: str | os.PathLike, *,
               protect: Iterable[str] = (), poll: float = 1.0, retry: float = RETRY) -> None:
    """Make the accounts match the Agents in `store`, then follow its changes until
    cancelled (cancelling waits for the one command under way, never starts another)."""
    keeper = AccountSync(store, accounts, Ledger(ledger_path), protect)
    after = await _resync(keeper, retry)
    last_retry = time.monotonic()
    while True:
        try:
            changes = await _call(keeper, store.changes, after, poll)
        except Compacted:
            after = await _resync(keeper, retry)
            continue
        except StoreError as exc:
            log.warning("accounts.store_unavailable", extra=fields(error=exc))
            await asyncio.sleep(poll)
            continue
        guids = list(dict.fromkeys(c.guid for c in changes if c.type == "agent"))
        after = max([after, *(c.revision for c in changes)])
        try:
            await _call(keeper, keeper.apply, guids)
        except StoreError as exc:
            log.warning("accounts.store_unavailable", extra=fields(error=exc))
            keeper.failed.update(guids)
        if keeper.failed and time.monotonic() - last_retry >= retry:
            after = await _resync(keeper, retry)  # one listing per host, not a command per agent
            last_retry = time.monotonic()


async def _call(keeper: AccountSync, fn, *args):
    """fn(*args) in a thread; on cancellation, stop the keeper and let that call end first,
    so that no command and no ledger write outlives the task."""
    call = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(call)
    except asyncio.CancelledError:
        keeper.stopping.set()
        await asyncio.wait({call})
        if not call.cancelled():
            call.exception()  # retrieved: it ends with the task, not as a warning
        raise


async def _resync(keeper: AccountSync, retry: float) -> int:
    while True:
        try:
            return await _call(keeper, keeper.resync)
        except (AccountError, StoreError) as exc:
            log.error("accounts.resync_failed", extra=fields(error=exc, retry_in=retry))
            await asyncio.sleep(retry)


async def run_accounts(cfg, store: ObjectStore, *, poll: float = 1.0, retry: float = RETRY) -> None:
    """Provision accounts as `[xmpp] accounts` says: the controller's, then every agent's,
    following the store until cancelled. Returns at once for "none"."""
    accounts = provisioner(cfg)
    if accounts is None:
        log.info("accounts.manual")
        return
    delay = 1.0
    while True:
        try:
            await asyncio.to_thread(ensure_controller, cfg, accounts)
            break
        except AccountError as exc:
            log.error("accounts.controller_failed", extra=fields(error=exc, retry_in=delay))
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry)
    await sync(store, accounts, Path(cfg.node.state_dir) / LEDGER_FILE,
               protect={controller_jid(cfg)}, poll=poll, retry=retry)

"""Who is online on the fabric, from the presence the controller receives. Pure: no I/O.

An account is online while at least one of its resources is available. `available` and
`unavailable` take a bare JID and a resource and say whether the account's state changed
(came online / went offline), which is what the controller's listeners are told.
"""


class Presence:
    """Available resources per bare JID."""

    def __init__(self) -> None:
        self._resources: dict[str, set[str]] = {}

    def available(self, bare: str, resource: str) -> bool:
        """A resource is available; True if the account just came online."""
        resources = self._resources.setdefault(bare, set())
        came = not resources
        resources.add(resource)
        return came

    def unavailable(self, bare: str, resource: str) -> bool:
        """A resource went away; True if the account just went offline."""
        resources = self._resources.get(bare)
        if not resources or resource not in resources:
            return False
        resources.discard(resource)
        if resources:
            return False
        del self._resources[bare]
        return True

    def clear(self) -> list[str]:
        """Everyone is offline now (our own session ended); the accounts that were online."""
        gone = sorted(self._resources)
        self._resources.clear()
        return gone

    def online(self) -> set[str]:
        """The bare JIDs online now."""
        return set(self._resources)

    def resource(self, bare: str, preferred: str = "agent") -> str | None:
        """A resource of `bare` that is available (`preferred` if it is), else None."""
        resources = self._resources.get(bare)
        if not resources:
            return None
        return preferred if preferred in resources else min(resources)

    def has(self, bare: str, resource: str) -> bool:
        """Whether that resource of `bare` is available."""
        return resource in self._resources.get(bare, ())

"""The app server's services: plain typed classes, exposed over every transport by the dispatcher."""

from collections.abc import Callable
from typing import Annotated

from pydantic import Field, StringConstraints

from appliance.osis.kv import Unavailable
from appliance.osis.schema import GUID
from appliance.osis.store import ObjectStore

Guid = Annotated[str, StringConstraints(pattern=f"^{GUID.pattern}$")]
Limit = Annotated[int, Field(ge=1, le=10000)]


def store_of(runtime) -> Callable[[], ObjectStore]:
    """The running OSIS store, or Unavailable (503) while the osis component is not running."""

    def get() -> ObjectStore:
        if runtime.store is None:
            raise Unavailable("the object store is not running (is [osis] enabled?)")
        return runtime.store

    return get

"""The app server's services: plain typed classes, exposed over every transport by the dispatcher."""

from collections.abc import Callable
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints

from appliance.osis.kv import Unavailable
from appliance.osis.schema import GUID
from appliance.osis.store import ObjectStore


def _not_a_bool(value):
    if isinstance(value, bool):  # pydantic's lax int takes true as 1: a client's mistake
        raise ValueError("should be an integer, not true or false")
    return value


def int_in(low: int | None = None, high: int | None = None):
    """An integer argument in [low, high]: "10" from a query string is 10, true/false is
    refused (the bounds inside, so that the OpenAPI document shows them)."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_not_a_bool)]


Int = int_in()
Guid = Annotated[str, StringConstraints(pattern=f"^{GUID.pattern}$")]
Limit = int_in(1, 10000)


def store_of(runtime) -> Callable[[], ObjectStore]:
    """The running OSIS store, or Unavailable (503) while the osis component is not running."""

    def get() -> ObjectStore:
        if runtime.store is None:
            raise Unavailable("the object store is not running (is [osis] enabled?)")
        return runtime.store

    return get

"""The fabric fixtures of the workflow engine's tests (tests/appliance/jobs/conftest.py)."""

from tests.appliance.jobs.conftest import fabric, store, tasklets  # noqa: F401

"""Shared fixtures: network namespaces and throwaway real servers (see tests/fixtures/)."""

pytest_plugins = ["tests.fixtures.netns", "tests.fixtures.servers"]

"""Tests of the agent (agent/)."""

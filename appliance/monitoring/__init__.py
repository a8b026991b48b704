"""Monitoring: monitor tasklets run on every online agent at a fixed interval, their
samples kept in OSIS (the latest value per series) and exported as Prometheus metrics.

- `samples`: what a monitor tasklet returns, checked, as MonitorSample objects (pure);
- `plan`: which agent is due when, each at its own phase of the interval (pure);
- `scheduler`: the asyncio loop that sends the jobs, stores the samples, expires old ones;
- `export`: the prometheus_client collector behind `/metrics`.
"""

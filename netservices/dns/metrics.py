"""Prometheus metrics of the DNS servers in this process, read from their `Stats`.

The counters are plain integers on the hot path (in shared memory for the UDP workers);
this collector sums them when `/metrics` is scraped, so that answering a query costs no
metrics call.
"""

import weakref
from dataclasses import fields

from prometheus_client.core import REGISTRY, CounterMetricFamily

from netservices.dns.core import Stats

_HELP = {
    "received": "DNS messages received",
    "answered": "DNS queries answered (authoritative, refused or from the cache)",
    "malformed": "DNS messages dropped or answered FORMERR because they did not parse",
    "servfail": "DNS queries answered SERVFAIL",
    "forwarded": "DNS queries sent to an upstream resolver",
    "cache_hits": "DNS queries answered from the forwarding cache",
}


class _Collector:
    def __init__(self):
        self.sources: weakref.WeakSet = weakref.WeakSet()  # Stats, or what reads like one

    def collect(self):
        for f in fields(Stats):
            family = CounterMetricFamily(f"dns_{f.name}", _HELP[f.name])
            family.add_metric([], sum(getattr(s, f.name) for s in list(self.sources)))
            yield family


_COLLECTOR = _Collector()
REGISTRY.register(_COLLECTOR)


def export(stats) -> None:
    """Count `stats` (a Stats, or an object with its attributes) in the process's metrics
    for as long as it lives."""
    _COLLECTOR.sources.add(stats)

"""The monitoring samples in OSIS as Prometheus metrics: a prometheus_client collector.

Each stored MonitorSample is one gauge sample: its metric name, its labels plus `agent`
(the agent's bare JID), its value, and the time it was taken as the sample's timestamp,
so that Prometheus sees how old the value of an agent that went offline is. The
collector reads the store on every scrape; a store that cannot be read gives no samples
(the appliance's own metrics are still exported beside them).
"""

import logging
from collections.abc import Callable

from prometheus_client.metrics_core import Metric

from appliance.log import fields
from appliance.monitoring.samples import Garbage, check_labels, check_metric
from appliance.osis.kv import StoreError
from appliance.osis.store import ObjectStore

log = logging.getLogger("appliance.monitoring")

HELP = "Latest value from the agents' monitor tasklets (label agent: the agent's JID)"


class SampleCollector:
    """Collector of the latest stored sample of every series."""

    def __init__(self, store: Callable[[], ObjectStore]):
        self.store = store

    def collect(self):
        try:
            found = self.store().scan("monitorsample")
        except StoreError as exc:
            log.debug("monitor.export_unavailable", extra=fields(error=exc))
            return
        families: dict[str, Metric] = {}
        for stored in found:
            sample = stored.obj
            try:  # stored by other means than the scheduler: checked again, never breaks a scrape
                metric, labels = check_metric(sample.metric), check_labels(dict(sample.labels or {}))
            except Garbage as exc:
                log.debug("monitor.export_skipped", extra=fields(guid=sample.guid, reason=exc))
                continue
            family = families.setdefault(metric, Metric(metric, HELP, "gauge"))
            family.add_sample(metric, {**labels, "agent": sample.agent}, sample.value,
                              timestamp=sample.timestamp)
        yield from families.values()


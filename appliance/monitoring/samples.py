"""What monitor tasklets return, checked and turned into MonitorSample objects. Pure.

A tasklet tagged `monitor` returns a list of samples::

    [{"metric": "node_load1", "value": 0.25},
     {"metric": "node_filesystem_avail_bytes", "value": 1.2e10, "labels": {"mountpoint": "/"}}]

Rules; a sample that breaks one is garbage (`Parsed.rejected` says which tasklet and why)
and is never stored, while the good samples beside it are:

- `metric`: a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`, at most 200
  characters), not in the appliance's own namespaces (`appliance_`, `process_`,
  `python_`), which /metrics exports too;
- `value`: a finite number (true and false are not numbers);
- `labels` (optional): at most MAX_LABELS names (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting
  with `__`, not `agent`, which the appliance adds) to text of at most 200 characters;
- at most MAX_SAMPLES samples per tasklet, and nothing else in a sample.

A sample's guid is derived from (agent, metric, labels): storing it replaces the previous
value of the same series, so OSIS holds the latest value of each series, with the time it
was taken (the appliance's clock when the result came in).
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from appliance.osis.schema import domain

MAX_SAMPLES = 1000
MAX_LABELS = 16
MAX_TEXT = 200
RESERVED = ("appliance_", "process_", "python_")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_KEYS = {"metric", "value", "labels"}


class Garbage(ValueError):
    """One sample that breaks the rules; the message says which rule."""


@dataclass
class Parsed:
    """A monitoring job's result: samples to store, garbage, tasklets that failed."""

    samples: list = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (tasklet, reason)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (tasklet, status, error)


def series_guid(agent: str, metric: str, labels: dict[str, str]) -> str:
    """The stored id of one series: the same agent, metric and labels give the same id."""
    key = json.dumps([agent, metric, sorted(labels.items())], ensure_ascii=False)
    return "ms-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def check_metric(name: object) -> str:
    """`name` if it may be exported as a metric of ours; Garbage otherwise."""
    if not isinstance(name, str) or len(name) > MAX_TEXT or not _METRIC.fullmatch(name):
        raise Garbage(f"metric {_show(name)} is not a Prometheus metric name")
    if name.startswith(RESERVED):
        raise Garbage(f"metric {name!r} is in the appliance's own namespace ({', '.join(RESERVED)})")
    return name


def check_labels(labels: object) -> dict[str, str]:
    """`labels` if they are label names to text within the rules; Garbage otherwise."""
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise Garbage(f"labels must be an object of at most {MAX_LABELS} names to text")
    for name, value in labels.items():
        if not _LABEL.fullmatch(name) or name.startswith("__") or name == "agent" or len(name) > MAX_TEXT:
            raise Garbage(f"label name {_show(name)} is not allowed")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise Garbage(f"label {name}: {_show(value)} is not text of at most {MAX_TEXT} characters")
    return labels


def sample(agent: str, item: object, now: float):
    """The MonitorSample of one returned item; Garbage if it breaks a rule."""
    if not isinstance(item, dict) or not _KEYS >= set(item) or "metric" not in item:
        raise Garbage(f"a sample is an object with metric, value and labels, not {_show(item)}")
    metric = check_metric(item["metric"])
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Garbage(f"{metric}: value {_show(value)} is not a finite number")
    labels = check_labels(item.get("labels", {}))
    return domain.MonitorSample(guid=series_guid(agent, metric, labels), agent=agent, metric=metric,
                                value=float(value), timestamp=now, labels=dict(labels))


def parse_result(agent: str, value: object, now: float) -> Parsed:
    """The samples in the value of a monitoring job's result (the tasklet engine's list of
    per-tasklet results), what was garbage in it, and which tasklets failed."""
    parsed = Parsed()
    if not isinstance(value, list):
        parsed.rejected.append(("-", f"the job's value is {_show(value)}, not a list of tasklet results"))
        return parsed
    for entry in value:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            parsed.rejected.append(("-", f"not a tasklet result: {_show(entry)}"))
        elif entry.get("status") != "ok":
            parsed.failed.append((name, str(entry.get("status")), _last_line(entry.get("error"))))
        else:
            _collect(parsed, agent, name, entry.get("value"), now)
    return parsed


def _collect(parsed: Parsed, agent: str, name: str, items: object, now: float) -> None:
    if not isinstance(items, list):
        parsed.rejected.append((name, f"returned {_show(items)}, not a list of samples"))
        return
    if len(items) > MAX_SAMPLES:
        parsed.rejected.append((name, f"returned {len(items)} samples, more than {MAX_SAMPLES}"))
        items = items[:MAX_SAMPLES]
    for item in items:
        try:
            parsed.samples.append(sample(agent, item, now))
        except Garbage as exc:
            parsed.rejected.append((name, str(exc)))


def _last_line(text: object) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1][:MAX_TEXT] if lines else ""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Reading a Prometheus endpoint in tests: one GET, parsed with prometheus_client's own parser."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created")}


class Scrape:
    def __init__(self, text: str):
        self.families = list(text_string_to_metric_families(text))
        self.samples = [s for family in self.families for s in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample `name` whose labels include `labels` (None when it is not exposed)."""
        for sample in self.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        return None

    @property
    def exposed(self) -> set[str]:
        """Every series name a query may use, also of labelled metrics that have no sample yet."""
        return {f.name + suffix for f in self.families for suffix in SUFFIXES.get(f.type, ("",))}


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def scrape(base: str, headers: dict[str, str] | None = None) -> Scrape:
    status, text = get(f"{base}/metrics", headers)
    assert status == 200, (status, text)
    return Scrape(text)

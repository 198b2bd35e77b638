"""The server's Prometheus metrics: requests and errors by status, latency, model batch sizes, queue depth.

Each app gets its own ``CollectorRegistry`` (two servers in one process do not share counts);
``GET /metrics`` renders it in the Prometheus text format (prometheus-client).
"""

from __future__ import annotations

from typing import Any

from polytask.dependencies import require

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Counters, histograms and a gauge in one registry."""

    def __init__(self) -> None:
        prometheus = require("prometheus_client", "polytask serve's /metrics", "serve", package="prometheus-client")
        self.registry = prometheus.CollectorRegistry()
        self.requests = prometheus.Counter("polytask_requests", "HTTP requests answered", ["path", "status"],
                                           registry=self.registry)
        self.errors = prometheus.Counter("polytask_request_errors", "HTTP requests answered with an error status",
                                         ["status"], registry=self.registry)
        self.latency = prometheus.Histogram("polytask_request_seconds", "time to answer a request", ["path"],
                                            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = prometheus.Histogram("polytask_batch_inputs", "inputs per model batch (across requests)",
                                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = prometheus.Histogram("polytask_batch_seconds", "time of one model batch",
                                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = prometheus.Gauge("polytask_queue_inputs", "inputs waiting for a model batch",
                                            registry=self.registry)

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        self.requests.labels(path=path, status=str(status)).inc()
        self.latency.labels(path=path).observe(seconds)
        if status >= 400:
            self.errors.labels(status=str(status)).inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        prometheus: Any = require("prometheus_client", "polytask serve's /metrics", "serve", package="prometheus-client")
        return prometheus.generate_latest(self.registry), prometheus.CONTENT_TYPE_LATEST

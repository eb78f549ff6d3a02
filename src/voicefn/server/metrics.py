"""Prometheus metrics (``/metrics``): executions by function and outcome, their latency, and
every HTTP route. One registry per app, so several servers can live in one process (tests)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.executions = Counter(
            "voicefn_executions",
            "Function executions by workspace, function, source and outcome "
            "(ok, or the error code).",
            ["workspace", "function", "source", "outcome"],
            registry=self.registry,
        )
        self.execution_seconds = Histogram(
            "voicefn_execution_duration_seconds",
            "Time the Executor took to run a function (the whole run, request included).",
            ["workspace", "function"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.http_requests = Counter(
            "voicefn_http_requests",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "voicefn_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.recorder_pending = Gauge(
            "voicefn_recorder_pending",
            "Executions recorded (journaled) but not yet stored in the database.",
            registry=self.registry,
        )
        self.recorded = Counter(
            "voicefn_recorded_executions",
            "Executions stored in the database by the recorder.",
            registry=self.registry,
        )

        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered (the hot path asks for the same ones)."""
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 50_000:
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def execution(
        self, workspace: str, function: str, source: str, outcome: str, seconds: float
    ) -> None:
        self._child(self.executions, workspace, function, source, outcome).inc()
        self._child(self.execution_seconds, workspace, function).observe(seconds)

    def http(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, method, route, str(status)).inc()
        self._child(self.http_seconds, method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

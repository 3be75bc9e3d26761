"""The fault injector's metric: chaosbed_fault_active{fault,kind,target,component} is 1 while a fault is
applied and 0 once it is undone, so any Prometheus user can overlay the fault windows."""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Gauge

from tools.metrics.endpoints import injector_address, serve

_INDEX = re.compile(r"-\d+$")


def component_of(service: str) -> str:
    """kafka-2 and kafka-controller-1 -> kafka, spark -> spark: the service without its number and role."""
    base = _INDEX.sub("", service)
    return base.split("-", 1)[0] if base.startswith("kafka") else base


class FaultGauge:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            "chaosbed_fault_active",
            "1 while a fault is applied (fault name, kind, target service, its component).",
            ["fault", "kind", "target", "component"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, str, str]] = set()

    def set(self, fault: str, kind: str, target: str, active: bool) -> None:
        labels = (fault, kind, target, component_of(target))
        with self._lock:
            self._seen.add(labels)
            self.gauge.labels(*labels).set(1 if active else 0)

    def clear(self) -> None:
        """Every fault inactive (after the final restore pass)."""
        with self._lock:
            for labels in self._seen:
                self.gauge.labels(*labels).set(0)

    def serve(self) -> bool:
        return serve(injector_address(), self.registry, "fault injector")

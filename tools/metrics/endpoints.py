"""Where chaosbed's own metrics are served and where Prometheus is asked, and starting an endpoint.

The ports are also in playbooks/group_vars/all/chaosbed.yml (chaosbed_metrics_ports), which the Prometheus
scrape configuration is generated from; a unit test keeps the two equal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, start_http_server

INJECTOR_PORT = 9465
PRODUCER_PORT = 9466
PROMETHEUS_URL = "http://127.0.0.1:9090"
# Environment overrides: host:port to serve on ("" or "off": not at all), and Prometheus's URL.
INJECTOR_ENV = "CHAOSBED_INJECTOR_METRICS"
PROMETHEUS_ENV = "CHAOSBED_PROMETHEUS_URL"


def injector_address(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(INJECTOR_ENV, f"127.0.0.1:{INJECTOR_PORT}")


def prometheus_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(PROMETHEUS_ENV) or PROMETHEUS_URL


def parse_address(address: str) -> tuple[str, int] | None:
    """host:port, or None for "" / "off"; ValueError for anything else."""
    if address.strip().lower() in ("", "off"):
        return None
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


def serve(address: str, registry: CollectorRegistry, what: str) -> bool:
    """Serve `registry` at host:port in a daemon thread. A port in use is one warning line, never fatal:
    metrics are an observer, the experiment goes on without them."""
    try:
        where = parse_address(address)
    except ValueError as exc:
        print(f"warning: {what} metrics not served: {exc}", file=sys.stderr, flush=True)
        return False
    if where is None:
        return False
    try:
        start_http_server(where[1], addr=where[0], registry=registry)
    except OSError as exc:
        print(
            f"warning: {what} metrics not served on {address}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return False
    return True

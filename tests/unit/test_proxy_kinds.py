"""The proxy kinds without a server: which proxies a scope selects, the toxics a fault adds, netem's
`via: proxy` mapping, and the mechanism the report names."""

from __future__ import annotations

from typing import Any

import pytest

from tools.chaos.docker.proxy import toxics_to_add
from tools.chaos.faults import parse_fault
from tools.chaos.kinds import FaultError, mechanism
from tools.chaos.kinds.netem import proxy_rate
from tools.chaos.schedule import Action
from tools.chaos.systemd.executor import check_vm_schedule
from tools.chaos.toxiproxy import select, toxic_name
from tools.chaos.vm_hosts import VmHost
from tools.errors import ToolError

PIPELINE = [
    *(f"{client}--kafka-{n}" for client in ("brokers", "producer", "spark") for n in (1, 2, 3)),
    "spark--postgres",
]


def is_broker(service: str) -> bool:
    return service.startswith("kafka")


@pytest.mark.parametrize(
    ("target", "paths", "peer", "expected"),
    [
        (
            "kafka-2",
            "inbound",
            "",
            [("brokers--kafka-2", "in"), ("producer--kafka-2", "in"), ("spark--kafka-2", "in")],
        ),
        ("kafka-2", "inbound", "spark", [("spark--kafka-2", "in")]),
        ("kafka-2", "inbound", "kafka-1", [("brokers--kafka-2", "in")]),  # shared by both followers
        ("kafka-2", "outbound", "", [("brokers--kafka-1", "out"), ("brokers--kafka-3", "out")]),
        ("spark", "outbound", "kafka-2", [("spark--kafka-2", "out")]),
        ("spark", "inbound", "", []),
        ("postgres", "inbound", "", [("spark--postgres", "in")]),
        ("producer", "all", "", [(f"producer--kafka-{n}", "out") for n in (1, 2, 3)]),
    ],
)
def test_scope_selects_the_paths(target: str, paths: str, peer: str, expected: list[tuple[str, str]]) -> None:
    assert select(PIPELINE, target, paths, peer, is_broker) == expected


def _action(raw: dict[str, Any]) -> Action:
    fault = parse_fault(1, {"at": "0s", "duration": "10s", **raw})
    return Action(number=1, fault=fault, service=fault.targets[0])


def test_a_fault_adds_one_toxic_per_proxy_and_stream() -> None:
    action = _action(
        {
            "kind": "proxy latency",
            "target": "spark",
            "paths": "outbound",
            "peer": "kafka-2",
            "direction": "both",
            "latency": 100,
            "jitter": 5,
        }
    )
    added = toxics_to_add(action, PIPELINE, "run/01-spark", is_broker)
    assert [(proxy, body["stream"]) for proxy, body in added] == [
        ("spark--kafka-2", "upstream"),
        ("spark--kafka-2", "downstream"),
    ]
    assert added[0][1] == {
        "name": toxic_name("run/01-spark", "upstream"),
        "type": "latency",
        "stream": "upstream",
        "toxicity": 1.0,
        "attributes": {"latency": 100, "jitter": 5},
    }
    assert toxic_name("run/01-spark", "upstream") == "chaosbed_run_01-spark_upstream"


def test_netem_via_proxy_is_the_target_egress() -> None:
    action = _action({"kind": "netem rate", "target": "kafka-1", "via": "proxy", "rate": "8mbit"})
    added = toxics_to_add(action, PIPELINE, "f", is_broker)
    # What kafka-1 sends: responses on its inbound paths, its own fetches on its outbound ones.
    assert {(p, b["stream"], b["attributes"]["rate"]) for p, b in added} == {
        ("brokers--kafka-1", "downstream", 1000),
        ("producer--kafka-1", "downstream", 1000),
        ("spark--kafka-1", "downstream", 1000),
        ("brokers--kafka-2", "upstream", 1000),
        ("brokers--kafka-3", "upstream", 1000),
    }


def test_netem_rate_in_whole_kb_per_second_only() -> None:
    assert proxy_rate("1mbit") == 125
    assert proxy_rate("64kbit") == 8
    with pytest.raises(FaultError, match="not a whole number of KB/s"):
        proxy_rate("100kbit")


def test_mechanism_names_what_applied_the_fault() -> None:
    assert mechanism("proxy slicer", {}) == "Toxiproxy"
    assert mechanism("netem delay", {"via": "proxy"}) == "Toxiproxy"
    assert mechanism("netem delay", {}) == "tc netem"
    assert mechanism("kill", {}) == "Docker API"
    assert mechanism("no such kind", {}) == ""


def test_the_vm_target_refuses_proxy_faults_before_anything_runs() -> None:
    fault = parse_fault(1, {"kind": "proxy latency", "target": "kafka-1", "at": "0s", "duration": "5s"})
    hosts = {"kafka-1": VmHost(service="kafka-1", ssh_host="192.0.2.1", unit="kafka")}
    with pytest.raises(ToolError, match="no Toxiproxy on the VM target's paths") as raised:
        check_vm_schedule([fault], hosts, "s.yml")
    assert raised.value.exit_code == 2
    check_vm_schedule([fault], {}, "s.yml")  # a container target: fine

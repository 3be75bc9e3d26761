"""The scenario -> Pumba argv mapping (a pure function), kind by kind and flag by flag."""

from __future__ import annotations

from typing import Any

import pytest

from tools.chaos import kinds
from tools.chaos.config import ChaosConfig
from tools.chaos.faults import parse_fault
from tools.chaos.pumba import PumbaMappingError, pumba_argv
from tools.chaos.schedule import Action

IMG = ChaosConfig().nettools_image
HEAD = ["pumba", "--log-level", "info", "--json"]


def argv(raw: dict[str, Any], peer_ips: list[str] | None = None) -> list[str]:
    fault = parse_fault(1, {"target": "kafka-2", "at": "0s", **raw})
    action = Action(1, fault, "kafka-2")
    out = pumba_argv(action, "chaosbed-kafka-2", pumba_bin="pumba", image=IMG, peer_ips=peer_ips)
    assert out[: len(HEAD)] == HEAD and out[-1] == "chaosbed-kafka-2"
    return out[len(HEAD) : -1]


IPT = f"--iptables-image {IMG} --pull-image=false"
TC = f"--tc-image {IMG} --pull-image=false"

# (scenario fault, expected Pumba argv between the global flags and the container name)
CASES: list[tuple[dict[str, Any], str]] = [
    # lifecycle
    ({"kind": "kill"}, "kill --signal SIGKILL"),
    ({"kind": "kill", "signal": "SIGTERM"}, "kill --signal SIGTERM"),
    ({"kind": "kill", "restart_after": "15s"}, "kill --signal SIGKILL"),  # + a start via the API after 15s
    ({"kind": "stop"}, "stop --time 5"),
    (
        {"kind": "stop", "time": 10, "restart": True, "duration": "20s"},
        "stop --time 10 --restart --duration 20s",
    ),
    ({"kind": "stop", "restart": True}, "stop --time 5 --restart --duration 10s"),
    ({"kind": "pause", "duration": "20s"}, "pause --duration 20s"),
    ({"kind": "pause", "duration": "1m30s"}, "pause --duration 1m30s"),
    ({"kind": "restart"}, "restart --timeout 1s"),
    ({"kind": "restart", "timeout": "5s"}, "restart --timeout 5s"),
    ({"kind": "rm", "confirm": True}, "rm --force=true --volumes=true"),
    (
        {"kind": "rm", "confirm": True, "force": False, "volumes": False, "links": True},
        "rm --force=false --volumes=false --links",
    ),
    # iptables loss
    (
        {"kind": "iptables loss", "duration": "30s", "probability": 0.3, "source": "172.20.0.5"},
        f"iptables --duration 30s {IPT} --source 172.20.0.5/32 loss --probability 0.3",
    ),
    (
        {"kind": "iptables loss", "duration": "30s", "probability": 1},
        f"iptables --duration 30s {IPT} loss --probability 1",
    ),
    (
        {
            "kind": "iptables loss",
            "duration": "10s",
            "interface": "eth1",
            "protocol": "tcp",
            "source": ["10.1.0.0/16", "10.2.3.4"],
            "destination": ["172.17.0.0/16"],
            "src_port": [1234],
            "dst_port": [80, 443],
            "mode": "nth",
            "every": 3,
            "packet": 1,
        },
        f"iptables --duration 10s --interface eth1 --protocol tcp {IPT}"
        " --source 10.1.0.0/16 --source 10.2.3.4/32 --destination 172.17.0.0/16"
        " --src-port 1234 --dst-port 80,443 loss --mode nth --every 3 --packet 1",
    ),
    (
        {"kind": "iptables loss", "duration": "5s", "protocol": "udp", "dst_port": "53", "probability": 0.05},
        f"iptables --duration 5s --protocol udp {IPT} --dst-port 53 loss --probability 0.05",
    ),
    # netem
    (
        {"kind": "netem delay", "duration": "15s"},
        f"netem --duration 15s {TC} delay --time 100 --jitter 10 --correlation 20",
    ),
    (
        {
            "kind": "netem delay",
            "duration": "15s",
            "time": 200,
            "jitter": 0,
            "correlation": 0,
            "distribution": "pareto",
        },
        f"netem --duration 15s {TC} delay --time 200 --jitter 0 --correlation 0 --distribution pareto",
    ),
    (
        {"kind": "netem loss", "duration": "15s", "percent": 12.5, "interface": "eth1"},
        f"netem --duration 15s --interface eth1 {TC} loss --percent 12.5 --correlation 0",
    ),
    (
        {"kind": "netem duplicate", "duration": "15s", "percent": 3, "correlation": 10},
        f"netem --duration 15s {TC} duplicate --percent 3 --correlation 10",
    ),
    (
        {"kind": "netem corrupt", "duration": "15s", "percent": 0.5},
        f"netem --duration 15s {TC} corrupt --percent 0.5 --correlation 0",
    ),
    (
        {"kind": "netem rate", "duration": "15s", "rate": "1mbit", "packetoverhead": 4},
        f"netem --duration 15s {TC} rate --rate 1mbit --packetoverhead 4 --cellsize 0 --celloverhead 0",
    ),
    (
        {
            "kind": "netem delay",
            "duration": "15s",
            "destination": ["10.0.0.0/8", "172.16.0.9"],
            "egress_port": [80, 81],
            "ingress_port": 9092,
        },
        "netem --duration 15s --target 10.0.0.0/8 --target 172.16.0.9/32 --egress-port 80,81"
        f" --ingress-port 9092 {TC} delay --time 100 --jitter 10 --correlation 20",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[f"{c[0]['kind']}-{i}" for i, c in enumerate(CASES)])
def test_pumba_argv(raw: dict[str, Any], expected: str) -> None:
    assert argv(raw) == expected.split()


def test_partition_maps_to_one_source_per_peer_address() -> None:
    raw = {"kind": "iptables partition", "duration": "30s", "peers": ["kafka-1", "kafka-3"]}
    expected = (
        f"iptables --duration 30s {IPT} --source 172.20.0.2/32 --source 172.20.0.4/32 loss --probability 1"
    )
    assert argv(raw, peer_ips=["172.20.0.2", "172.20.0.4"]) == expected.split()


def test_global_flags_come_before_the_command_and_the_binary_is_as_given() -> None:
    fault = parse_fault(1, {"kind": "pause", "target": "kafka-2", "at": "0s", "duration": "20s"})
    out = pumba_argv(Action(1, fault, "kafka-2"), "chaosbed-kafka-2", pumba_bin="/opt/pumba", image=IMG)
    assert out == [
        "/opt/pumba",
        "--log-level",
        "info",
        "--json",
        "pause",
        "--duration",
        "20s",
        "chaosbed-kafka-2",
    ]


@pytest.mark.parametrize("probability", [0.333, 0.005, 0.125])
def test_refuses_probabilities_pumba_would_round(probability: float) -> None:
    with pytest.raises(PumbaMappingError, match="more than 2 decimals"):
        argv({"kind": "iptables loss", "duration": "5s", "probability": probability})


def test_refuses_a_partition_without_peer_addresses() -> None:
    with pytest.raises(PumbaMappingError):
        argv({"kind": "iptables partition", "duration": "5s", "peers": ["kafka-1"]}, peer_ips=[])


STRESS = f"stress --duration 30s --stress-image {ChaosConfig().stress_image} --pull-image=false"


@pytest.mark.parametrize(
    ("raw", "stressors"),
    [
        ({"kind": "stress", "duration": "30s"}, "--cpu 4 --timeout 60s"),  # Pumba's default stressors
        (
            {"kind": "stress", "duration": "30s", "stressors": "--vm 2 --vm-bytes=128m"},
            "--vm 2 --vm-bytes 128m --timeout 30s",
        ),
    ],
)
def test_stress_maps_to_one_stressors_argument(raw: dict[str, Any], stressors: str) -> None:
    # The stressors are one argv element (`--stressors=...`): Pumba splits them on whitespace itself.
    assert argv(raw) == [*STRESS.split(), f"--stressors={stressors}"]


PROXY_KINDS = [k for k in kinds.KINDS if k.startswith("proxy ")]


@pytest.mark.parametrize("kind", PROXY_KINDS)
def test_proxy_kinds_are_refused(kind: str) -> None:
    # Pumba has no proxy faults: refused before anything runs (the CLI turns it into exit 2).
    with pytest.raises(PumbaMappingError, match="Pumba has no proxy faults"):
        argv({"kind": kind, "duration": "5s"})


def test_disk_fill_is_refused() -> None:
    # Pumba has no disk fault: refused before anything runs (the CLI turns it into exit 2).
    with pytest.raises(PumbaMappingError, match="Pumba has no disk fault"):
        argv({"kind": "disk fill", "duration": "5s", "free": 0})


def test_kill_executor_is_refused() -> None:
    # Pumba acts on whole containers: refused before anything runs (the CLI turns it into exit 2).
    with pytest.raises(PumbaMappingError, match="Pumba acts on whole containers"):
        argv({"kind": "kill-executor"})


def test_every_kind_is_mapped() -> None:
    from tools.chaos.faults import KINDS

    refused = {"disk fill", "kill-executor", *PROXY_KINDS}
    mapped = {c[0]["kind"] for c in CASES} | {"iptables partition", "stress"} | refused
    assert mapped == set(KINDS)

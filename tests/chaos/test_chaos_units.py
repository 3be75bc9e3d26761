"""Pure parts: durations, iptables and tc command building, rule listing parsing, kinds and their units."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tools.chaos import docker as docker_units
from tools.chaos import kinds, netem, netfilter
from tools.chaos import pumba as pumba_units
from tools.chaos import systemd as systemd_units
from tools.chaos.config import ChaosConfig
from tools.chaos.docker.engine import Engine
from tools.chaos.durations import DurationError, format_duration, parse_duration
from tools.chaos.faults import parse_fault
from tools.chaos.plan import run_steps
from tools.chaos.schedule import Action
from tools.chaos.targets import Target


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("1m30s", 90_000), ("500ms", 500), ("1.5s", 1500), ("2h", 7_200_000), (0, 0), ("0", 0)],
)
def test_parse_duration(text: object, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["30", 30, "3x", "", "s", "1us", True, None, "1m30"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(("ms", "text"), [(30_000, "30s"), (90_000, "1m30s"), (500, "500ms"), (1500, "1.5s")])
def test_format_duration_round_trips(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse_duration(text) == ms


def _params(raw: dict[str, object]) -> dict[str, object]:
    return parse_fault(1, {"target": "t", "at": "0s", **raw}).params


def test_loss_rule_keeps_probability_exact_and_tags_it() -> None:
    params = _params({"kind": "iptables loss", "duration": "5s", "probability": 0.333})
    assert netfilter.loss_rules(params, "chaosbed:r/01-t") == [
        [
            "INPUT",
            "-i",
            "eth0",
            "-m",
            "comment",
            "--comment",
            "chaosbed:r/01-t",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.333",
            "-j",
            "DROP",
        ]
    ]
    tiny = _params({"kind": "iptables loss", "duration": "5s", "probability": 0.00001})
    assert "0.00001" in netfilter.loss_rules(tiny, "c")[0]  # never 1e-05, never rounded to 0.00


def test_loss_rules_follow_pumbas_filter_semantics() -> None:
    """One rule per filter value (OR-ed), as Pumba's buildIPTablesCmd; the Pumba form has no comment."""
    params = _params(
        {
            "kind": "iptables loss",
            "duration": "5s",
            "protocol": "tcp",
            "source": ["10.1.0.0/16", "10.2.3.4"],
            "destination": "172.17.0.0/16",
            "dst_port": "80,443",
            "src_port": 1234,
            "mode": "nth",
            "every": 3,
            "packet": 1,
        }
    )
    rules = netfilter.loss_rules(params, None)
    stat = ["-m", "statistic", "--mode", "nth", "--every", "3", "--packet", "1", "-j", "DROP"]
    prefix = ["INPUT", "-i", "eth0", "-p", "tcp"]
    assert rules == [
        [*prefix, "-s", "10.1.0.0/16", *stat],
        [*prefix, "-s", "10.2.3.4/32", *stat],
        [*prefix, "-d", "172.17.0.0/16", *stat],
        [*prefix, "--sport", "1234", *stat],
        [*prefix, "--dport", "80", *stat],
        [*prefix, "--dport", "443", *stat],
    ]
    pumba = _params({"kind": "iptables loss", "duration": "5s", "probability": 0.5})
    assert netfilter.loss_rules(pumba, None)[0][-4:] == ["--probability", "0.50", "-j", "DROP"]


def test_partition_rules() -> None:
    assert netfilter.partition_rules("eth0", ["10.0.0.2", "10.0.0.3"], "chaosbed:x") == [
        [
            "INPUT",
            "-i",
            "eth0",
            "-s",
            "10.0.0.2/32",
            "-m",
            "comment",
            "--comment",
            "chaosbed:x",
            "-j",
            "DROP",
        ],
        [
            "INPUT",
            "-i",
            "eth0",
            "-s",
            "10.0.0.3/32",
            "-m",
            "comment",
            "--comment",
            "chaosbed:x",
            "-j",
            "DROP",
        ],
    ]


def test_tagged_rules_parses_iptables_listing() -> None:
    listing = "\n".join(
        [
            "-P INPUT ACCEPT",
            '-A INPUT -s 10.9.9.9/32 -i eth0 -m comment --comment "chaosbed:run-1/03-k" -m statistic '
            "--mode random --probability 0.33300000010 -j DROP",
            '-A INPUT -i eth0 -m comment --comment "chaosbed:run-2/01-k" -j DROP',
            '-A INPUT -i eth0 -m comment --comment "someone else" -j DROP',
        ]
    )
    mine = netfilter.tagged_rules(listing, "chaosbed:run-1/03-k")
    assert mine == [
        [
            "INPUT",
            "-s",
            "10.9.9.9/32",
            "-i",
            "eth0",
            "-m",
            "comment",
            "--comment",
            "chaosbed:run-1/03-k",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            "0.33300000010",
            "-j",
            "DROP",
        ]
    ]
    assert len(netfilter.tagged_rules(listing)) == 2  # any chaosbed rule, never someone else's


@pytest.mark.parametrize(
    ("raw", "args"),
    [
        ({"kind": "netem delay"}, ["delay", "100ms", "10ms", "20.00"]),
        ({"kind": "netem delay", "time": 5, "jitter": 0, "correlation": 0}, ["delay", "5ms"]),
        (
            {"kind": "netem delay", "time": 50, "jitter": 5, "correlation": 12.5, "distribution": "normal"},
            ["delay", "50ms", "5ms", "12.50", "distribution", "normal"],
        ),
        ({"kind": "netem loss", "percent": 5}, ["loss", "5.00"]),
        ({"kind": "netem loss", "percent": 5, "correlation": 25}, ["loss", "5.00", "25.00"]),
        ({"kind": "netem duplicate", "percent": 1.5}, ["duplicate", "1.50"]),
        ({"kind": "netem corrupt", "percent": 2, "correlation": 1}, ["corrupt", "2.00", "1.00"]),
        ({"kind": "netem rate"}, ["rate", "100kbit"]),
        (
            {"kind": "netem rate", "rate": "1mbit", "packetoverhead": -4, "cellsize": 0},
            ["rate", "1mbit", "-4"],
        ),
        (
            {"kind": "netem rate", "rate": "1gbit", "packetoverhead": 1, "cellsize": 2, "celloverhead": 3},
            ["rate", "1gbit", "1", "2", "3"],
        ),
    ],
)
def test_netem_args_match_pumba(raw: dict[str, object], args: list[str]) -> None:
    assert netem.netem_args(str(raw["kind"]), _params({**raw, "duration": "5s"})) == args


def test_netem_commands_with_and_without_filters() -> None:
    plain = _params({"kind": "netem loss", "duration": "5s", "percent": 5})
    assert netem.apply_cmds("netem loss", plain) == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "5.00"]
    ]
    assert netem.undo_cmds(plain) == [["tc", "qdisc", "del", "dev", "eth0", "root", "netem"]]
    filtered = _params(
        {"kind": "netem loss", "duration": "5s", "percent": 5, "destination": "10.0.0.0/8", "egress_port": 80}
    )
    cmds = [" ".join(c) for c in netem.apply_cmds("netem loss", filtered)]
    assert cmds == [
        "tc qdisc add dev eth0 root handle 1: prio",
        "tc qdisc add dev eth0 parent 1:1 handle 10: sfq",
        "tc qdisc add dev eth0 parent 1:2 handle 20: sfq",
        "tc qdisc add dev eth0 parent 1:3 handle 30: netem loss 5.00",
        "tc filter add dev eth0 protocol ip parent 1:0 prio 1 u32 match ip dst 10.0.0.0/8 flowid 1:3",
        "tc filter add dev eth0 protocol ip parent 1:0 prio 1 u32 match ip sport 80 0xffff flowid 1:3",
    ]
    # One delete of the root removes the whole tree at once (Pumba's 4-step teardown stalls traffic, #166).
    assert netem.undo_cmds(filtered) == [
        ["tc", "qdisc", "del", "dev", "eth0", "root", "handle", "1:", "prio"]
    ]


def test_tc_root_qdisc_ownership() -> None:
    assert netem.root_is_default("qdisc noqueue 0: root refcnt 2")
    assert not netem.root_is_default("qdisc pfifo_fast 1: root refcnt 3 bands 3")
    assert netem.root_is_ours("qdisc netem 8001: root refcnt 2 limit 1000 delay 100ms")
    assert netem.root_is_ours("qdisc prio 1: root refcnt 2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1")
    assert not netem.root_is_ours("qdisc noqueue 0: root refcnt 2")
    assert not netem.root_is_ours("qdisc prio 2: root refcnt 2 bands 3")  # someone else's


# --- kinds and their units ------------------------------------------------------------------------


def test_every_kind_has_a_unit_in_every_executor() -> None:
    """Adding a kind means one unit per executor (CONTRIBUTING.md); this fails until each exists."""
    for executor in (docker_units, systemd_units, pumba_units):
        covered = [kind for unit in executor.UNITS for kind in unit.kinds]
        assert sorted(covered) == sorted(kinds.KINDS), executor.__name__
    for executor in (docker_units, systemd_units):
        ops = [op for unit in executor.UNITS for op in unit.undo_ops]
        assert len(ops) == len(set(ops)), executor.__name__  # one unit reverts each journaled op


def test_kind_definitions_carry_what_the_schedule_needs() -> None:
    assert kinds.LIFECYCLE_KINDS == ("kill", "stop", "pause", "restart", "rm")
    # proxy timeout, reset_peer, limit_data stop a path: disruptive, and never drawn at random.
    stops = {"proxy timeout", "proxy reset_peer", "proxy limit_data"}
    assert {
        "kill",
        "stop",
        "pause",
        "restart",
        "rm",
        "iptables partition",
        "disk fill",
    } | stops == kinds.DISRUPTIVE_KINDS
    assert tuple(k for k in kinds.KINDS if k != "rm" and k not in stops) == kinds.RANDOM_KINDS
    assert [why for _, why in kinds.CONFLICT_GROUPS] == [
        "two lifecycle faults on one container at once",
        "two netem faults on one container at once",
        "two disk fills on one volume at once",
    ]
    stop = parse_fault(1, {"kind": "stop", "target": "t", "at": "0s", "time": 2, "restart": True})
    assert (stop.duration_ms, stop.window_ms, stop.hold_ms) == (10_000, 14_000, 10_000)
    restart = parse_fault(1, {"kind": "restart", "target": "t", "at": "0s", "timeout": "2s"})
    assert (restart.window_ms, restart.hold_ms) == (5_000, 0)


class FakeApi:
    """The Docker API calls the lifecycle unit makes, against a container that obeys them."""

    def __init__(self) -> None:
        self.running, self.paused = True, False

    def inspect_container(self, cid: str) -> dict[str, Any]:
        state = {"Running": self.running, "Paused": self.paused, "Status": "running"}
        return {"State": state, "Config": {"Labels": {}}, "HostConfig": {}}

    def kill(self, cid: str, signal: str) -> None:
        self.running = False

    def start(self, cid: str) -> None:
        self.running = True

    def pause(self, cid: str) -> None:
        self.paused = True

    def unpause(self, cid: str) -> None:
        self.paused = False

    def restart(self, cid: str, timeout: int) -> None:
        self.running = True

    def remove_container(self, cid: str, **flags: Any) -> None:
        self.running = False


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "kill", "restart_after": "5s"},
        {"kind": "kill", "signal": "SIGTERM"},
        {"kind": "stop", "time": 1, "restart": True},
        {"kind": "pause", "duration": "5s"},
        {"kind": "restart", "timeout": "2s"},
        {"kind": "rm", "confirm": True, "links": True},
    ],
)
def test_docker_dry_run_lines_are_the_calls_the_steps_make(raw: dict[str, Any]) -> None:
    fault = parse_fault(1, {"target": "t", "at": "0s", **raw})
    action = Action(1, fault, "t")
    engine = Engine(SimpleNamespace(api=FakeApi()), ChaosConfig(), "r")  # type: ignore[arg-type]
    target = Target("t", "c0ffee" * 10, "cb-t", "running")
    unit = docker_units.unit_for(fault.kind)
    run_steps(unit.checks(engine, action, target, "r/01-t"), [])
    spec = unit.undo_spec(engine, action, target, "r/01-t")
    steps = [*unit.apply(engine, action, target, "r/01-t", spec), *unit.undo(engine, spec, "r/01-t")]
    calls: list[str] = []
    run_steps(steps, calls)
    shown = [line for step in steps for line in step.shows]
    if fault.kind == "stop":  # the stop signal comes from a label at run time: shown as "SIGTERM (or ...)"
        assert shown[0].startswith(calls[0]) and calls[-1] == shown[-1]
        return
    # Every call made is a line the dry run shows, in order (an undo's call is skipped when not needed).
    assert calls == [line for line in shown if line in calls] and set(calls) <= set(shown)
    if fault.kind in ("kill", "pause", "rm"):
        assert calls == shown


# --- stress ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "args"),
    [
        ({}, ["--cpu", "4", "--timeout", "60s"]),  # Pumba's default stressors
        ({"stressors": "--cpu 2"}, ["--cpu", "2", "--timeout", "30s"]),  # timeout = the duration
        ({"stressors": "--vm=1 --vm-bytes=50% --vm-keep"}, ["--vm", "1", "--vm-bytes", "50%", "--vm-keep"]),
        (
            {"stressors": "--cpu 1 --cpu-load 40 --io 2 --timeout 1m"},
            ["--cpu", "1", "--cpu-load", "40", "--io", "2"],
        ),
        (
            {"stressors": "--hdd 1 --hdd-bytes 1g --metrics-brief"},
            ["--hdd", "1", "--hdd-bytes", "1g", "--metrics-brief"],
        ),
    ],
)
def test_stress_params_are_stress_ng_args(raw: dict[str, object], args: list[str]) -> None:
    params = _params({"kind": "stress", "duration": "30s", **raw})
    assert params["args"][: len(args)] == args
    assert params["stressors"] == " ".join(params["args"])
    assert "--timeout" in params["args"]


def test_stress_timeout_rounds_a_fraction_of_a_second_up() -> None:
    params = _params({"kind": "stress", "duration": "1.5s", "stressors": "--cpu 1"})
    assert params["args"] == ["--cpu", "1", "--timeout", "2s"]


@pytest.mark.parametrize(
    ("stressors", "problem"),
    [
        ("--cpu", "--cpu needs a value"),
        ("--vm-bytes 1g", "names no stressor"),
        ("--cpu 1 --vm-bytes 1g", "--vm-bytes applies to --vm workers"),
        ("--cpu 1 --cpu 2", "--cpu is given twice"),
        ("--cpu 1 --cpu-load 0", "--cpu-load must be a percentage"),
        ("--vm 1 --vm-bytes 0", "--vm-bytes must be a size"),
        ("--cpu 1 --vm-keep=1", "--vm-keep takes no value"),
        ("-c 1", "unknown stressor or option '-c'"),
        ("", "'stressors' must be stress-ng arguments"),
    ],
)
def test_stress_refuses(stressors: str, problem: str) -> None:
    with pytest.raises(kinds.FaultError, match=problem.replace("-", r"\-")):
        _params({"kind": "stress", "duration": "30s", "stressors": stressors})


def test_systemd_stress_is_a_transient_unit_in_the_slice() -> None:
    from tools.chaos.systemd.stress import run_cmd, stress_unit_name

    unit = stress_unit_name("20261204T140000Z-s/01-svc")
    assert unit == "chaosbed-stress-20261204T140000Z-s-01-svc.service"
    assert run_cmd(unit, "system.slice", ["--cpu", "1", "--timeout", "5s"]) == [
        "systemd-run",
        f"--unit={unit}",
        "--slice=system.slice",
        "--collect",
        "--quiet",
        "stress-ng",
        "--cpu",
        "1",
        "--timeout",
        "5s",
    ]


@pytest.mark.parametrize(
    ("free", "params"),
    [
        (None, {"free": "0B", "free_bytes": 0}),
        (0, {"free": "0B", "free_bytes": 0}),
        ("64MiB", {"free": "64MiB", "free_bytes": 64 * 2**20}),
        ("1G", {"free": "1GiB", "free_bytes": 2**30}),  # bare K/M/G are binary, as df and fallocate read them
        ("500MB", {"free": "500000000B", "free_bytes": 500_000_000}),
        (4096, {"free": "4KiB", "free_bytes": 4096}),
    ],
)
def test_disk_fill_params_are_normalised(free: Any, params: dict[str, Any]) -> None:
    raw = {"kind": "disk fill", "target": "t", "at": "0s", "duration": "5s"}
    fault = parse_fault(1, raw if free is None else {**raw, "free": free})
    assert fault.params == {"duration": "5s", "volume": "", **params}


def test_disk_fill_units_name_the_ballast_and_the_commands() -> None:
    from tools.chaos.docker.disk import ballast_name, find_volume
    from tools.chaos.systemd.disk import fill_cmd

    assert ballast_name("20261204T1Z-ci/03-kafka-1") == ".chaosbed-ballast-20261204T1Z-ci-03-kafka-1"
    mounts = [
        {"Type": "bind", "Source": "/v/data", "Destination": "/var/lib/kafka/data", "RW": True},
        {"Type": "bind", "Source": "/c/server.properties", "Destination": "/etc/kafka/p", "RW": False},
    ]
    assert find_volume({"Mounts": mounts}, "", "k")["Source"] == "/v/data"  # the only writable one
    with pytest.raises(ValueError, match="k has no writable volume at /etc/kafka/p"):
        find_volume({"Mounts": mounts}, "/etc/kafka/p", "k")
    cmd = fill_cmd("/var/lib/kafka/data", "/var/lib/kafka/data/.b", 0)
    assert cmd[:2] == ["sh", "-c"] and cmd[3:] == ["sh", "/var/lib/kafka/data", "/var/lib/kafka/data/.b", "0"]

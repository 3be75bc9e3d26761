"""Network faults in real network namespaces: the exact rules, their effect on traffic, and their removal."""

from __future__ import annotations

import threading

import pytest
from docker.errors import ContainerError

from tools.chaos import netfilter
from tools.chaos.docker.engine import Engine
from tools.chaos.docker.iptables import insert
from tools.chaos.docker.netem import add_qdiscs
from tools.chaos.outcome import FaultFailed
from tools.chaos.undo import undo

pytestmark = pytest.mark.docker


def tcp_probe(bed, src: str, dst_ip: str) -> int:
    """Connect from `src` to a closed port on dst: 1 = refused (reachable), 124 = no answer (dropped)."""
    code, _ = bed.client.containers.get(f"{bed.prefix}{src}").exec_run(
        ["timeout", "2", "bash", "-c", f"exec 3<>/dev/tcp/{dst_ip}/9"]
    )
    return code


def test_loss_rule_is_exact_tagged_effective_and_removed(bed) -> None:
    bed.service("t")
    bed.service("o")
    path = bed.scenario(
        "- {kind: iptables loss, target: t, at: 0s, duration: 8s, probability: 0.333, protocol: udp}\n"
        "- {kind: iptables loss, target: o, at: 0s, duration: 8s, mode: nth, every: 2, packet: 0}\n"
    )
    run_dir = bed.runs_dir / "loss"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 2, proc)
    [rule] = bed.chaos_rules("t")
    # Exact probability (iptables stores it as a 31-bit fraction: 0.333 -> 0.33300000010), never 0.33.
    assert "--probability 0.33300000010" in rule
    assert f'--comment "chaosbed:{run_dir.name}/01-t"' in rule
    assert rule.startswith("-A INPUT -i eth0 -p udp")
    [nth] = bed.chaos_rules("o")
    assert "--mode nth --every 2 --packet 0" in nth

    # Effect: every 2nd UDP datagram from t to o is dropped (nth is exact, unlike random).
    o = bed.client.containers.get(f"{bed.prefix}o")
    receiver = (
        "perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>9999,Proto=>q(udp)) or die;"
        " $n=0; $SIG{ALRM}=sub{print qq($n\\n); exit}; alarm 3; while($s->recv($b,64)){$n++}'"
    )
    result: dict[str, bytes] = {}
    thread = threading.Thread(target=lambda: result.update(out=o.exec_run(["bash", "-c", receiver]).output))
    thread.start()
    sender = f"sleep 0.5; for i in $(seq 100); do echo x > /dev/udp/{bed.ip('o')}/9999; done"
    bed.client.containers.get(f"{bed.prefix}t").exec_run(["bash", "-c", sender])
    thread.join(10)
    assert int(result["out"].strip()) == 50

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert bed.chaos_rules("t") == [] and bed.chaos_rules("o") == []
    assert not bed.sidecars()
    lines = {line["target"]: line for line in bed.timeline(run_dir)}
    assert lines["t"]["kind"] == "iptables loss" and lines["t"]["outcome"] == "ok"
    assert lines["t"]["params"]["probability"] == 0.333
    assert any("--probability 0.333 " in c for c in lines["t"]["call"])


def test_partition_drops_traffic_from_peers_only(bed) -> None:
    for name in ("broker", "peer1", "peer2", "other"):
        bed.service(name)
    target_ip = bed.ip("broker")
    assert tcp_probe(bed, "peer1", target_ip) == 1  # reachable before
    path = bed.scenario(
        "- {kind: iptables partition, target: broker, peers: [peer1, peer2], at: 0s, duration: 8s}\n"
    )
    run_dir = bed.runs_dir / "part"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    assert tcp_probe(bed, "peer1", target_ip) == 124
    assert tcp_probe(bed, "peer2", target_ip) == 124
    assert tcp_probe(bed, "other", target_ip) == 1
    rules = bed.chaos_rules("broker")
    assert sorted(r.split()[3] for r in rules) == sorted(f"{bed.ip(p)}/32" for p in ("peer1", "peer2"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert tcp_probe(bed, "peer1", target_ip) == 1  # healed
    assert bed.chaos_rules("broker") == []
    [line] = bed.timeline(run_dir)
    assert line["kind"] == "iptables partition" and line["outcome"] == "ok"


def test_partition_with_a_peer_down_cuts_off_the_others_and_says_so(bed) -> None:
    for name in ("broker", "up", "down"):
        bed.service(name)
    bed.client.containers.get(f"{bed.prefix}down").stop(timeout=0)
    path = bed.scenario(
        "- {kind: iptables partition, target: broker, peers: [up, down], at: 0s, duration: 2s}\n"
    )
    run_dir = bed.runs_dir / "halfpart"
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "ok"
    assert line["call"][0] == "peers down, nothing to cut off: down"
    assert sum(" -s " in c and "-I INPUT" in c for c in line["call"]) == 1  # only the peer that is up
    assert bed.chaos_rules("broker") == []


def test_failed_setup_undoes_the_rules_it_applied(bed) -> None:
    container = bed.service("t")
    engine = Engine(bed.client, bed.cfg, "failtest")
    good = ["INPUT", "-i", "eth0", "-m", "comment", "--comment", "chaosbed:failtest/01-t", "-j", "DROP"]
    bad = ["INPUT", "-i", "eth0", "-m", "no-such-match", "-j", "DROP"]
    calls: list[str] = []
    with pytest.raises(FaultFailed, match="no-such-match"):
        insert(engine, container.id, "failtest/01-t", [good, good, bad], calls)
    assert sum(c.startswith("exec iptables -w 5 -I") for c in calls) == 3
    assert sum(c.startswith("exec iptables -w 5 -D") for c in calls) == 2
    assert bed.chaos_rules("t") == []
    assert not bed.sidecars()
    assert netfilter.insert_cmd(good)[-1] == "DROP"


def test_missing_nettools_image_is_refused_up_front_and_never_pulled(bed) -> None:
    container = bed.service("t")
    bed.extra_env["CHAOSBED_NETTOOLS_IMAGE"] = "chaosbed/not-there:0"
    path = bed.scenario("- {kind: iptables loss, target: t, at: 0s, duration: 2s, probability: 0.5}\n")
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "noimg"))
    assert result.returncode == 2 and "never pulls it" in result.stderr
    assert not bed.runs_dir.exists()
    # Gone mid-run (someone deleted it): the fault fails cleanly, still without a pull.
    engine = Engine(bed.client, bed.cfg, "noimg")
    with pytest.raises(FaultFailed, match="never pulled"):
        insert(engine, container.id, "noimg/01-t", [["INPUT", "-j", "DROP"]], [])
    assert not bed.client.images.list(name="chaosbed/not-there")
    assert not bed.sidecars()
    bed.extra_env.clear()
    assert bed.chaos_rules("t") == []


def test_restore_removes_pumba_format_rules(bed) -> None:
    """Rules Pumba installs (no comment, 2-decimal probability) are deleted by their exact spec."""
    container = bed.service("t")
    params = {"interface": "eth0", "protocol": "tcp", "source": ["10.9.0.0/16"], "destination": []}
    params |= {"src_port": [], "dst_port": [9092], "mode": "random", "probability": 0.3}
    rules = netfilter.loss_rules(params, None)
    for rule in rules:
        bed.netns_exec("t", ["iptables", "-I", *rule])
    assert bed.rules("t").count("--probability 0.2999999998") == 2
    spec = {"op": "iptables", "container_id": container.id, "comment": None, "rules": rules}
    undo(bed.client, bed.cfg, spec, run_id="pumba", fault_id="pumba/01-t", calls=[])
    undo(bed.client, bed.cfg, spec, run_id="pumba", fault_id="pumba/01-t", calls=[])  # idempotent
    assert "DROP" not in bed.rules("t")
    assert not bed.sidecars()


def test_dry_run_prints_exact_calls_and_changes_nothing(bed) -> None:
    container = bed.service("t")
    bed.service("peer")
    path = bed.scenario(
        "- {kind: iptables loss, target: t, at: 0s, duration: 5s, probability: 0.125}\n"
        "- {kind: iptables partition, target: t, peers: [peer], at: 10s, duration: 5s}\n"
        "- {kind: pause, target: peer, at: 1m, duration: 5s}\n"
    )
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "dry"), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"network_mode=container:{container.id[:12]}" in result.stdout
    assert (
        "--comment chaosbed:dry/01-t -m statistic --mode random --probability 0.125 -j DROP" in result.stdout
    )
    assert f"-s {bed.ip('peer')}/32 -m comment --comment chaosbed:dry/02-t -j DROP" in result.stdout
    assert "T+01:00.000 03-peer pause" in result.stdout
    assert not bed.runs_dir.exists() and not bed.sidecars()
    assert bed.chaos_rules("t") == [] and not bed.state("peer")["Paused"]


def qdisc_supported(bed, qdisc: list[str]) -> bool:
    """Does this kernel have the qdisc? Asked in a namespace of the test's own, not by chaosbed's probe."""
    try:
        bed.client.containers.run(
            bed.cfg.nettools_image,
            ["tc", "qdisc", "add", "dev", "lo", "root", *qdisc],
            network_mode="none",
            cap_add=["NET_ADMIN"],
            labels={f"{bed.ns}.probe": "true"},
            remove=True,
        )
    except ContainerError:
        return False
    return True


def netem_supported(bed) -> bool:
    return qdisc_supported(bed, ["netem", "delay", "1ms"])


def test_netem_applies_and_restores_or_is_recorded_unsupported(bed) -> None:
    """Where the kernel has sch_netem (and sch_prio for a filtered fault) the qdiscs go in and come out;
    where it has not, the fault is recorded unsupported and nothing is applied."""
    bed.service("t")
    bed.service("u")
    before = {name: bed.netns_exec(name, ["tc", "qdisc", "show", "dev", "eth0"]) for name in ("t", "u")}
    netem_ok = netem_supported(bed)
    expected = {"t": netem_ok, "u": netem_ok and qdisc_supported(bed, ["prio"])}
    path = bed.scenario(
        "- {kind: netem delay, target: t, at: 0s, duration: 6s, time: 100}\n"
        "- {kind: netem loss, target: u, at: 0s, duration: 6s, percent: 10, destination: 10.0.0.0/8}\n"
    )
    run_dir = bed.runs_dir / "netem"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    if any(expected.values()):
        bed.wait_applied(run_dir, sum(expected.values()), proc)
    if expected["t"]:
        root = bed.netns_exec("t", ["tc", "qdisc", "show", "dev", "eth0"])
        assert "qdisc netem" in root and "root" in root and "delay 100ms" in root
    if expected["u"]:
        tree = bed.netns_exec("u", ["tc", "qdisc", "show", "dev", "eth0"])
        assert "qdisc prio 1: root" in tree and "qdisc netem 30: parent 1:3" in tree and "loss 10%" in tree
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    outcomes = {line["target"]: line["outcome"] for line in bed.timeline(run_dir)}
    assert outcomes == {name: "ok" if ok else "unsupported" for name, ok in expected.items()}
    for line in bed.timeline(run_dir):
        if line["outcome"] == "unsupported":
            assert "sch_netem" in line["detail"] or "sch_prio" in line["detail"]
    intents = {r["target"] for r in bed.journal(run_dir) if r["type"] == "intent"}
    assert intents == {name for name, ok in expected.items() if ok}  # nothing applied where unsupported
    for name in ("t", "u"):
        assert bed.netns_exec(name, ["tc", "qdisc", "show", "dev", "eth0"]) == before[name]
    assert not bed.sidecars()


def test_netem_apply_and_undo_leave_qdiscs_that_are_not_ours(bed) -> None:
    """apply then undo brings the root qdisc back (or, without sch_netem, the failed apply changes nothing);
    neither touches a root qdisc that is not ours."""
    container = bed.service("t")
    engine = Engine(bed.client, bed.cfg, "tc")
    delay = [["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "100ms"]]
    undo_netem = [["tc", "qdisc", "del", "dev", "eth0", "root", "netem"]]
    spec = {"op": "tc", "container_id": container.id, "dev": "eth0", "cmds": undo_netem}
    if netem_supported(bed):
        add_qdiscs(engine, container.id, "tc/01-t", "eth0", delay, undo_netem, [])
        assert "delay 100ms" in bed.netns_exec("t", ["tc", "qdisc", "show", "dev", "eth0"])
        undo(bed.client, bed.cfg, spec, run_id="tc", fault_id="tc/01-t", calls=[])
    else:
        with pytest.raises(FaultFailed, match="exited"):  # no sch_netem: nothing to roll back
            add_qdiscs(engine, container.id, "tc/01-t", "eth0", delay, undo_netem, [])
        undo(bed.client, bed.cfg, spec, run_id="tc", fault_id="tc/01-t", calls=[])  # root not ours: no-op
    assert "noqueue 0: root" in bed.netns_exec("t", ["tc", "qdisc", "show", "dev", "eth0"])

    bed.netns_exec("t", ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "pfifo_fast"])
    with pytest.raises(FaultFailed, match="already has a root qdisc"):
        add_qdiscs(engine, container.id, "tc/02-t", "eth0", delay, undo_netem, [])
    undo(bed.client, bed.cfg, spec, run_id="tc", fault_id="tc/02-t", calls=[])
    assert "pfifo_fast 1: root" in bed.netns_exec("t", ["tc", "qdisc", "show", "dev", "eth0"])
    assert not bed.sidecars()

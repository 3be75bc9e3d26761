"""Always restore: SIGKILL of the controlling process at awkward moments, then `tools chaos restore`;
SIGTERM/SIGINT make the process restore by itself."""

from __future__ import annotations

import signal
import time

import pytest

from tools.chaos.sidecar import HOLD_ENV

pytestmark = pytest.mark.docker


def assert_clean(bed, *names: str) -> None:
    for name in names:
        state = bed.state(name)
        assert state["Running"] and not state["Paused"], (name, state["Status"])
    assert not bed.sidecars()


def test_sigkill_mid_pause_stop_and_iptables_then_restore_twice(bed) -> None:
    for name in ("paused", "stopped", "killed", "net"):
        bed.service(name)
    path = bed.scenario(
        "- {kind: pause, target: paused, at: 0s, duration: 60s}\n"
        "- {kind: stop, target: stopped, at: 0s, time: 1, restart: true, duration: 60s}\n"
        "- {kind: kill, target: killed, at: 0s, restart_after: 60s}\n"
        "- {kind: iptables partition, target: net, peers: [paused], at: 0s, duration: 60s}\n"
        "- {kind: iptables loss, target: net, at: 0s, duration: 60s, probability: 0.25}\n"
    )
    run_dir = bed.runs_dir / "crash"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 5, proc)
    bed.kill_hard(proc)
    assert proc.returncode == -signal.SIGKILL
    # Pumba leaves all of this behind after SIGKILL; so do we, until restore:
    assert bed.state("paused")["Paused"]
    assert not bed.state("stopped")["Running"] and not bed.state("killed")["Running"]
    assert len(bed.chaos_rules("net")) == 2

    # While the run's lock is held nobody else restores; once it died, restore may run.
    first = bed.cli("restore", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("restored-after-crash") == 5
    assert_clean(bed, "paused", "stopped", "killed", "net")
    assert bed.chaos_rules("net") == []
    lines = bed.timeline(run_dir)
    assert sorted(line["outcome"] for line in lines) == ["restored-after-crash"] * 5
    assert {line["kind"] for line in lines} == {
        "pause",
        "stop",
        "kill",
        "iptables partition",
        "iptables loss",
    }
    pause = next(line for line in lines if line["kind"] == "pause")
    assert pause["call"][0].endswith("/pause") and pause["call"][-1].endswith("/unpause")

    second = bed.cli("restore", "--run-dir", str(run_dir))
    assert second.returncode == 0 and "nothing to restore" in second.stdout
    assert len(bed.timeline(run_dir)) == 5


def test_sigkill_during_sidecar_setup_then_restore(bed) -> None:
    bed.service("net")
    bed.extra_env[HOLD_ENV] = "20000"  # the sidecar waits inside setup, before the rule goes in
    path = bed.scenario("- {kind: iptables loss, target: net, at: 0s, duration: 30s, probability: 0.5}\n")
    run_dir = bed.runs_dir / "setup"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_for("the sidecar", lambda: [c for c in bed.sidecars() if c.status == "running"], 30, proc)
    bed.kill_hard(proc)
    bed.extra_env.clear()
    assert bed.chaos_rules("net") == []
    assert [c.status for c in bed.sidecars()] == ["running"]  # Pumba's leftover `tail -f` sidecar, here too
    bed.extra_env.clear()
    result = bed.cli("restore", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert "restored" in result.stdout and "removed sidecar" in result.stdout
    assert_clean(bed, "net")
    assert bed.chaos_rules("net") == []


def test_sigkill_between_rules_then_restore_all(bed) -> None:
    """Killed after the first of several rules went in: restore finds the rest by the comment."""
    bed.service("net")
    bed.extra_env[HOLD_ENV] = "2000"  # 2 s before each of the 3 rules
    sources = "[10.1.0.1, 10.1.0.2, 10.1.0.3]"
    path = bed.scenario(
        "- {kind: iptables loss, target: net, at: 0s, duration: 30s, probability: 0.5, "
        f"source: {sources}}}\n"
    )
    run_dir = bed.runs_dir / "partial"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_for("the sidecar", bed.sidecars, 30, proc)
    time.sleep(3)  # the first rule is in, the second not yet
    bed.kill_hard(proc)
    bed.extra_env.clear()
    assert len(bed.chaos_rules("net")) == 1
    result = bed.cli("restore", "--all")
    assert result.returncode == 0, result.stderr
    assert_clean(bed, "net")
    assert bed.chaos_rules("net") == []
    assert bed.cli("restore", "--all").returncode == 0


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_signal_mid_fault_restores_then_exits(bed, signum: int, code: int) -> None:
    for name in ("paused", "stopped", "net"):
        bed.service(name)
    path = bed.scenario(
        "- {kind: pause, target: paused, at: 0s, duration: 60s}\n"
        "- {kind: stop, target: stopped, at: 0s, time: 1}\n"
        "- {kind: iptables loss, target: net, at: 0s, duration: 60s, probability: 0.5}\n"
        "- {kind: pause, target: net, at: 50s, duration: 5s}\n"
    )
    run_dir = bed.runs_dir / f"sig{code}"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 3, proc)
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert time.monotonic() - sent < 15
    assert "restoring every active fault" in err
    assert_clean(bed, "paused", "stopped", "net")
    assert bed.chaos_rules("net") == []
    lines = bed.timeline(run_dir)
    assert sorted(line["outcome"] for line in lines) == ["interrupted"] * 3  # the 4th never started
    nothing = bed.cli("restore", "--run-dir", str(run_dir))
    assert nothing.returncode == 0 and "nothing to restore" in nothing.stdout


def test_restore_refuses_a_live_run_and_bad_arguments(bed) -> None:
    bed.service("p")
    path = bed.scenario("- {kind: pause, target: p, at: 0s, duration: 30s}\n")
    run_dir = bed.runs_dir / "live"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    try:
        busy = bed.cli("restore", "--run-dir", str(run_dir))
        assert busy.returncode == 2 and "still active" in busy.stderr
        assert bed.state("p")["Paused"]
        rerun = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir))
        assert rerun.returncode == 2 and "already holds a chaos run" in rerun.stderr
        everything = bed.cli("restore", "--all")
        assert everything.returncode == 0 and "skipped, the run is still active" in everything.stdout
        assert bed.state("p")["Paused"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert bed.cli("restore").returncode == 2
    missing = bed.cli("restore", "--run-dir", str(bed.tmp / "nowhere"))
    assert missing.returncode == 2 and "no chaos-journal.jsonl" in missing.stderr


def test_restore_all_sweeps_stray_chaosbed_rules_and_nothing_else(bed) -> None:
    """Safety net for a lost journal: tagged rules go, everyone else's rules stay."""
    bed.service("t")
    tagged = ["-s", "10.7.7.7/32", "-m", "comment", "--comment", "chaosbed:lost/01-t", "-j", "DROP"]
    foreign = ["-s", "10.8.8.8/32", "-m", "comment", "--comment", "someone-else", "-j", "DROP"]
    bed.netns_exec("t", ["iptables", "-I", "INPUT", *tagged])
    bed.netns_exec("t", ["iptables", "-I", "INPUT", *foreign])
    result = bed.cli("restore", "--all")
    assert result.returncode == 0, result.stderr
    assert "removed stray rule" in result.stdout and "chaosbed:lost/01-t" in result.stdout
    rules = bed.rules("t")
    assert "chaosbed:" not in rules and "someone-else" in rules
    assert not bed.sidecars()


def test_restore_killed_midway_is_simply_run_again(bed) -> None:
    bed.service("net")
    bed.service("p")
    path = bed.scenario(
        "- {kind: iptables loss, target: net, at: 0s, duration: 60s, probability: 0.5}\n"
        "- {kind: pause, target: p, at: 0s, duration: 60s}\n"
    )
    run_dir = bed.runs_dir / "twice"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 2, proc)
    bed.kill_hard(proc)
    bed.extra_env[HOLD_ENV] = "20000"  # the restore's own sidecar stalls: kill the restore there
    restore = bed.spawn("restore", "--run-dir", str(run_dir))
    bed.wait_for(
        "the restore sidecar", lambda: [c for c in bed.sidecars() if c.status == "running"], 30, restore
    )
    bed.kill_hard(restore)
    bed.extra_env.clear()
    assert len(bed.chaos_rules("net")) == 1
    again = bed.cli("restore", "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert_clean(bed, "net", "p")
    assert bed.chaos_rules("net") == []
    assert sorted(line["fault_id"] for line in bed.timeline(run_dir)) == ["twice/01-net", "twice/02-p"]

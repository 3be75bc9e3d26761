"""Lifecycle faults on real containers: each really changes the container's state, and is restored."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def by_target(lines: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {line["target"]: line for line in lines}


def test_pause_kill_stop_restart_rm_change_state_and_restore(bed) -> None:
    for name in ("p", "k", "s", "r", "x", "held"):
        bed.service(name)
    bed.service("sig", labels={"com.gaiaadm.pumba.stop-signal": "SIGKILL"})
    started_before = bed.state("r")["StartedAt"]
    path = bed.scenario(
        """
faults:
  - {kind: pause, target: p, at: 0s, duration: 3s}
  - {kind: kill, target: k, at: 0s, restart_after: 3s}
  - {kind: stop, target: s, at: 0s, time: 1, restart: true, duration: 2s}
  - {kind: stop, target: sig, at: 0s, time: 1, restart: true, duration: 2s}
  - {kind: restart, target: r, at: 0s, timeout: 1s}
  - {kind: rm, target: x, at: 0s, confirm: true}
  - {kind: kill, target: held, at: 0s, signal: SIGKILL}
"""
    )
    run_dir = bed.runs_dir / "life"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 6, proc)
    assert bed.state("p")["Paused"]
    assert not bed.state("k")["Running"] and bed.state("k")["ExitCode"] == 137
    bed.wait_for("s stopped", lambda: not bed.state("s")["Running"], 5)
    assert not bed.state("sig")["Running"]
    assert not bed.state("held")["Running"]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for name in ("p", "k", "s", "sig", "r", "held"):
        state = bed.state(name)
        assert state["Running"] and not state["Paused"], name
    assert bed.state("r")["StartedAt"] != started_before
    assert not bed.client.containers.list(all=True, filters={"name": f"{bed.prefix}x"}, ignore_removed=True)

    lines = by_target(bed.timeline(run_dir))
    assert {str(t) for t in lines} == {"p", "k", "s", "sig", "r", "x", "held"}
    assert all(line["outcome"] == "ok" for line in lines.values()), lines
    assert lines["p"]["call"] == [
        f"POST /containers/{bed.client.containers.get(bed.prefix + 'p').short_id}/pause",
        f"POST /containers/{bed.client.containers.get(bed.prefix + 'p').short_id}/unpause",
    ]
    # Pumba's stop: SIGTERM, poll, SIGKILL after `time` (sleep ignores TERM as PID 1) ...
    assert "not stopped after 1s: SIGKILL" in lines["s"]["call"]  # type: ignore[operator]
    # ... but the pumba stop-signal label is honoured, so no SIGKILL fallback there.
    assert any("signal=SIGKILL" in c for c in lines["sig"]["call"])  # type: ignore[union-attr]
    assert not any("not stopped" in c for c in lines["sig"]["call"])  # type: ignore[union-attr]
    for line in lines.values():
        assert line["executor"] == "docker"
        assert str(line["start"]).endswith("Z") and len(str(line["start"])) == 24
        assert int(line["end_ms"]) >= int(line["start_ms"])  # type: ignore[call-overload]
    pause = lines["p"]
    assert 2900 <= int(pause["end_ms"]) - int(pause["start_ms"]) <= 6000  # type: ignore[call-overload]
    assert "chaos run" in out


# Six writers that fsync all the time: their tasks are often in uninterruptible I/O, which a cgroup v1
# freezer cannot freeze; runc then gives up ("unable to freeze"), as it did once on a busy broker.
FSYNC_WRITERS = (
    "for i in 1 2 3 4 5 6; do (while :; do dd if=/dev/zero of=/tmp/f$i bs=1M count=20 conv=fsync"
    " 2>/dev/null; done) & done; wait"
)


def test_pause_of_a_container_busy_with_fsync_is_retried_until_frozen(bed) -> None:
    # Measured on this machine's cgroup v1: about a quarter of plain `docker pause` calls on it fail, so
    # 10 plain pauses all succeed 4 % of the time. 3 s apart: a pause and its retries never overlap the next.
    bed.service("io", command=["sh", "-c", FSYNC_WRITERS])
    faults = "".join(f"  - {{kind: pause, target: io, at: {3 * i}s, duration: 300ms}}\n" for i in range(10))
    run_dir = bed.runs_dir / "fsync"
    done = bed.cli("run", "--scenario", str(bed.scenario("faults:\n" + faults)), "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    lines = bed.timeline(run_dir)
    assert len(lines) == 10
    assert all(line["outcome"] == "ok" for line in lines), [line["outcome"] for line in lines]
    for line in lines:
        # Every retry is on the record, and every fault ends with one pause that worked and its unpause.
        *retries, pause, unpause = line["call"]
        assert all("unable to freeze" in c and c.endswith("retried") for c in retries), line["call"]
        assert pause.endswith("/pause") and unpause.endswith("/unpause")
    state = bed.state("io")
    assert state["Running"] and not state["Paused"]


def test_pause_of_an_already_paused_container_fails_and_leaves_it_paused(bed) -> None:
    # Not ours to undo: unpausing it would end someone else's pause early.
    bed.service("frozen").pause()
    run_dir = bed.runs_dir / "paused"
    done = bed.cli(
        "run", "--scenario", str(bed.scenario("- {kind: pause, target: frozen, at: 0s, duration: 1s}\n")),
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert done.returncode == 1
    (line,) = bed.timeline(run_dir)
    assert line["outcome"].startswith("failed: ") and line["outcome"].endswith("frozen is already paused")
    assert bed.state("frozen")["Paused"]
    bed.client.containers.get(f"{bed.prefix}frozen").unpause()


def test_target_vanishing_mid_fault_is_recorded_not_fatal(bed) -> None:
    bed.service("gone")
    bed.service("net")
    path = bed.scenario(
        "- {kind: pause, target: gone, at: 0s, duration: 4s}\n"
        "- {kind: iptables loss, target: net, at: 0s, duration: 4s, probability: 0.5}\n"
    )
    run_dir = bed.runs_dir / "vanish"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 2, proc)
    bed.client.containers.get(f"{bed.prefix}gone").remove(force=True)
    bed.client.containers.get(f"{bed.prefix}net").remove(force=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert {line["outcome"] for line in bed.timeline(run_dir)} == {"target-vanished"}
    assert not bed.sidecars()


def test_a_fault_on_a_stopped_target_fails_cleanly(bed) -> None:
    bed.service("down").stop(timeout=0)
    path = bed.scenario("- {kind: pause, target: down, at: 0s, duration: 1s}\n")
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "down"))
    assert result.returncode == 1, result.stderr
    [line] = bed.timeline(bed.runs_dir / "down")
    assert line["outcome"].startswith("failed: ") and "not running" in line["outcome"]

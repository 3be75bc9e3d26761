"""The Pumba executor's plumbing (subprocess, journal, timeline, restore after SIGKILL), driven by a
stand-in `pumba` that does what Pumba does for pause/kill/stress through the Docker API (Pumba itself
cannot be installed here). The argv mapping itself is covered exhaustively in test_chaos_pumba_argv.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

FAKE = """#!{python}
import json, os, signal, sys, time
import docker

argv = sys.argv
with open(os.environ["FAKE_PUMBA_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\\n")
if os.environ.get("FAKE_PUMBA_FAIL"):
    print(json.dumps({{"level": "fatal", "msg": "boom"}}), file=sys.stderr)
    sys.exit(1)
client = docker.from_env()
target = client.containers.get(argv[-1])
command = argv[4]
if command == "kill":
    target.kill(signal=argv[argv.index("--signal") + 1])
elif command == "pause":
    seconds = float(argv[argv.index("--duration") + 1].rstrip("s"))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    target.pause()
    print(json.dumps({{"level": "info", "msg": "pausing container"}}), file=sys.stderr, flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop:
        time.sleep(0.05)
    target.unpause()
elif command == "stress":
    # Pumba's sidecar (runtime/docker/stress.go): unnamed, labelled skip, auto-removed, the target's cgroup.
    image = argv[argv.index("--stress-image") + 1]
    stressors = next(a for a in argv if a.startswith("--stressors=")).split("=", 1)[1].split()
    parent = (target.attrs["HostConfig"].get("CgroupParent") or "/docker") + "/" + target.id
    sidecar = client.containers.run(
        image, stressors, entrypoint=["/stress-ng"], labels={{"com.gaiaadm.pumba.skip": "true"}},
        cgroup_parent=parent, auto_remove=True, detach=True,
    )
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    deadline = time.monotonic() + float(argv[argv.index("--duration") + 1].rstrip("s"))
    while time.monotonic() < deadline and not stop:
        time.sleep(0.05)
    sidecar.stop(timeout=5)
"""


@pytest.fixture
def fake_pumba(bed) -> Path:
    path = bed.tmp / "fake-pumba"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    bed.extra_env["FAKE_PUMBA_LOG"] = str(bed.tmp / "pumba-argv.jsonl")
    return path


def test_pumba_executor_runs_the_exact_argv_and_records_it(bed, fake_pumba: Path) -> None:
    bed.service("p")
    bed.service("k")
    path = bed.scenario(
        "- {kind: pause, target: p, at: 0s, duration: 2s}\n"
        "- {kind: kill, target: k, at: 0s, restart_after: 2s}\n"
    )
    run_dir = bed.runs_dir / "pumba"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir), "--executor", "pumba",
                     "--pumba-bin", str(fake_pumba))  # fmt: skip
    bed.wait_for("the pause", lambda: bed.state("p")["Paused"], 20, proc)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    head = [str(fake_pumba.resolve()), "--log-level", "info", "--json"]
    lines = {line["target"]: line for line in bed.timeline(run_dir)}
    assert lines["p"]["call"] == [*head, "pause", "--duration", "2s", f"{bed.prefix}p"]
    assert lines["k"]["call"] == [*head, "kill", "--signal", "SIGKILL", f"{bed.prefix}k"]
    assert {line["executor"] for line in lines.values()} == {"pumba"}
    assert {line["outcome"] for line in lines.values()} == {"ok"}
    assert any(c.endswith("/start") for c in lines["k"]["api_calls"])  # restart_after: chaosbed's start
    ran = [json.loads(x) for x in (bed.tmp / "pumba-argv.jsonl").read_text().splitlines()]
    assert sorted(map(tuple, ran)) == sorted(tuple(line["call"]) for line in lines.values())
    assert bed.state("p")["Running"] and not bed.state("p")["Paused"] and bed.state("k")["Running"]
    assert (run_dir / "pumba-01-k.log").exists() or (run_dir / "pumba-02-k.log").exists()


def test_sigkill_leaves_pumba_orphaned_and_restore_stops_it(bed, fake_pumba: Path) -> None:
    bed.service("p")
    path = bed.scenario("- {kind: pause, target: p, at: 0s, duration: 50s}\n")
    run_dir = bed.runs_dir / "orphan"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir), "--executor", "pumba",
                     "--pumba-bin", str(fake_pumba))  # fmt: skip
    bed.wait_for("the pause", lambda: bed.state("p")["Paused"], 20, proc)
    [record] = [r for r in bed.journal(run_dir) if r["type"] == "pumba"]
    bed.kill_hard(proc)
    assert bed.state("p")["Paused"]
    assert Path(f"/proc/{record['pid']}").exists()  # Pumba outlives the killed runner
    result = bed.cli("restore", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert f"stopped orphaned pumba pid {record['pid']}" in result.stdout
    assert bed.state("p")["Running"] and not bed.state("p")["Paused"]
    bed.wait_for("pumba gone", lambda: not _alive(record["pid"]), 15)
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "restored-after-crash" and line["executor"] == "pumba"


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_failing_pumba_fails_the_fault(bed, fake_pumba: Path) -> None:
    bed.service("p")
    bed.extra_env["FAKE_PUMBA_FAIL"] = "1"
    path = bed.scenario("- {kind: pause, target: p, at: 0s, duration: 1s}\n")
    run_dir = bed.runs_dir / "fail"
    pumba = ["--executor", "pumba", "--pumba-bin", str(fake_pumba)]
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir), *pumba)
    assert result.returncode == 1, result.stderr
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "failed: pumba exited 1: boom"


def test_pumba_refusals_touch_nothing(bed, fake_pumba: Path) -> None:
    bed.service("t")
    path = bed.scenario("- {kind: iptables loss, target: t, at: 0s, duration: 5s, probability: 0.333}\n")
    pumba = ["--executor", "pumba", "--pumba-bin", str(fake_pumba)]
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "r"), *pumba)
    assert result.returncode == 2 and "more than 2 decimals" in result.stderr
    assert not (bed.tmp / "pumba-argv.jsonl").exists() and not bed.runs_dir.exists()
    if shutil.which("pumba") is None:
        env_free = bed.cli("run", "--scenario", str(path), "--executor", "pumba")
        assert env_free.returncode == 2 and "needs a Pumba binary" in env_free.stderr
    not_exec = bed.cli("run", "--scenario", str(path), "--executor", "pumba", "--pumba-bin", str(path))
    assert not_exec.returncode == 2 and "not an executable" in not_exec.stderr


def test_sigterm_stops_pumba_which_reverts_then_exits_143(bed, fake_pumba: Path) -> None:
    bed.service("p")
    path = bed.scenario("- {kind: pause, target: p, at: 0s, duration: 50s}\n")
    run_dir = bed.runs_dir / "term"
    pumba = ["--executor", "pumba", "--pumba-bin", str(fake_pumba)]
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir), *pumba)
    bed.wait_for("the pause", lambda: bed.state("p")["Paused"], 20, proc)
    [record] = [r for r in bed.journal(run_dir) if r["type"] == "pumba"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert bed.state("p")["Running"] and not bed.state("p")["Paused"]
    assert not _alive(record["pid"])
    [line] = bed.timeline(run_dir)
    assert line["outcome"] == "interrupted"
    assert any(c.startswith("SIGTERM pumba") for c in line["api_calls"])


def pumba_stress_sidecars(bed, target_id: str) -> list:
    found = bed.client.containers.list(all=True, filters={"label": "com.gaiaadm.pumba.skip=true"})
    return [c for c in found if c.attrs["HostConfig"].get("CgroupParent") == f"/docker/{target_id}"]


def test_pumba_stress_sidecar_is_removed_by_restore_after_runner_and_pumba_die(bed, fake_pumba: Path) -> None:
    target = bed.service("s")
    path = bed.scenario("- {kind: stress, target: s, at: 0s, duration: 60s, stressors: '--cpu 1'}\n")
    run_dir = bed.runs_dir / "pstress"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir), "--executor", "pumba",
                     "--pumba-bin", str(fake_pumba))  # fmt: skip
    try:
        bed.wait_for("Pumba's sidecar", lambda: pumba_stress_sidecars(bed, target.id), 20, proc)
        [record] = [r for r in bed.journal(run_dir) if r["type"] == "pumba"]
        assert "--stressors=--cpu 1 --timeout 60s" in record["argv"]
        bed.kill_hard(proc)
        os.kill(record["pid"], signal.SIGKILL)  # Pumba dies too: nobody is left to stop its sidecar
        bed.wait_for("pumba gone", lambda: not _alive(record["pid"]), 15)
        assert pumba_stress_sidecars(bed, target.id)
        result = bed.cli("restore", "--run-dir", str(run_dir))
        assert result.returncode == 0, result.stderr
        assert not pumba_stress_sidecars(bed, target.id)
        [line] = bed.timeline(run_dir)
        assert (line["kind"], line["outcome"]) == ("stress", "restored-after-crash")
    finally:
        for sidecar in pumba_stress_sidecars(bed, target.id):
            sidecar.remove(force=True)

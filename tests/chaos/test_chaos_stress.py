"""The stress kind on real containers: stress-ng in the target's cgroup, the target's CPU throttled and its
memory charged, measured in the target's own cgroup; the sidecar removed by the undo and by restore."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from tools.chaos.config import ChaosConfig
from tools.run.layout import JOURNAL_FILE

pytestmark = pytest.mark.docker

STRESS_IMAGE = ChaosConfig().stress_image
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _stress_image(docker_client) -> None:
    try:
        docker_client.images.get(STRESS_IMAGE)
    except ImageNotFound:
        pytest.fail(f"{STRESS_IMAGE} is not on this engine (run make setup)")


def cgroup_dir(pid: int, controller: str) -> Path:
    """The cgroup of a process for one controller (cgroup v1), or its unified cgroup (v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path(f"/sys/fs/cgroup/{controller}{path}")
    unified = next(ln for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if ln.startswith("0::"))
    return Path("/sys/fs/cgroup" + unified[3:])


def throttled(cpu_dir: Path) -> int:
    """Periods in which the cgroup (with everything under it) ran out of its CPU quota."""
    stat = dict(line.split() for line in (cpu_dir / "cpu.stat").read_text().splitlines())
    return int(stat["nr_throttled"])


def memory_used(mem_dir: Path) -> int:
    for name in ("memory.current", "memory.usage_in_bytes"):  # v2, v1 (hierarchical)
        if (mem_dir / name).exists():
            return int((mem_dir / name).read_text())
    raise AssertionError(f"no memory usage file in {mem_dir}")


def stress_sidecars(bed) -> list:
    return [c for c in bed.sidecars() if c.name.startswith(f"{bed.prefix}stress-")]


def stress_pids(bed, sidecar) -> list[int]:
    sidecar.reload()
    if sidecar.status != "running":
        return []
    return [int(row[1]) for row in sidecar.top()["Processes"] if "stress-ng" in row[-1]]


def test_stress_runs_in_the_target_cgroup_throttles_its_cpu_and_charges_its_memory(bed) -> None:
    # A quota of 0.2 CPU and a memory limit: what stress-ng uses must count against both.
    target = bed.service("t", nano_cpus=200_000_000, mem_limit="256m")
    target.reload()
    pid = target.attrs["State"]["Pid"]
    cpu_dir, mem_dir = cgroup_dir(pid, "cpu"), cgroup_dir(pid, "memory")
    idle_start, memory_before = throttled(cpu_dir), memory_used(mem_dir)
    time.sleep(1)
    idle = throttled(cpu_dir) - idle_start  # an idle target stays within its quota

    path = bed.scenario(
        "- {kind: stress, target: t, at: 0s, duration: 6s,\n"
        "   stressors: '--cpu 1 --vm 1 --vm-bytes 64m --vm-keep'}\n"
    )
    dry = bed.cli("run", "--scenario", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"cgroup_parent=/docker/{target.id}" in dry.stdout
    assert "cmd=--cpu 1 --vm 1 --vm-bytes 64m --vm-keep --timeout 6s" in dry.stdout
    assert not stress_sidecars(bed)

    run_dir = bed.runs_dir / "stress"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    [sidecar] = stress_sidecars(bed)
    pids = bed.wait_for("stress-ng workers", lambda: stress_pids(bed, sidecar), 10, proc)
    for worker in pids:  # every stress-ng process sits in the target's cgroup subtree
        assert cgroup_dir(worker, "cpu").parent == cpu_dir
        assert cgroup_dir(worker, "memory").parent == mem_dir
    busy_start = throttled(cpu_dir)
    bed.wait_for(
        "the target's cgroup throttled", lambda: throttled(cpu_dir) - busy_start > idle + 5, 10, proc
    )
    bed.wait_for(
        "64 MiB charged to the target", lambda: memory_used(mem_dir) > memory_before + 48 * MB, 10, proc
    )

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not stress_sidecars(bed)
    [line] = bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("stress", "ok")
    assert any(f"cgroup_parent=/docker/{target.id}" in call for call in line["call"])
    assert any(call.startswith("DELETE /containers/") for call in line["call"])
    assert bed.state("t")["Running"]


def _stress_run_whose_injector_was_killed(bed, name: str) -> Path:  # type: ignore[no-untyped-def]
    """A 60 s CPU stress of t whose injector was SIGKILLed once the sidecar is up: what restore must clean."""
    bed.service("t")
    path = bed.scenario("- {kind: stress, target: t, at: 0s, duration: 60s, stressors: '--cpu 1'}\n")
    run_dir = bed.runs_dir / name
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    bed.kill_hard(proc)
    return run_dir


def test_sigkill_of_the_injector_leaves_the_sidecar_and_restore_removes_it(bed) -> None:
    run_dir = _stress_run_whose_injector_was_killed(bed, "crash")
    [sidecar] = stress_sidecars(bed)
    assert bed.wait_for("stress-ng running", lambda: stress_pids(bed, sidecar), 10)

    result = bed.cli("restore", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert not stress_sidecars(bed)
    [line] = bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("stress", "restored-after-crash")
    again = bed.cli("restore", "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert len(bed.timeline(run_dir)) == 1 and bed.state("t")["Running"]


def test_restore_all_sweeps_a_stress_sidecar_whose_journal_is_lost(bed) -> None:
    run_dir = _stress_run_whose_injector_was_killed(bed, "lost")
    (run_dir / JOURNAL_FILE).unlink()
    assert stress_sidecars(bed)
    result = bed.cli("restore", "--all")
    assert result.returncode == 0, result.stderr
    assert not stress_sidecars(bed)


def test_sigterm_mid_stress_removes_the_sidecar_then_exits_143(bed) -> None:
    bed.service("t")
    path = bed.scenario("- {kind: stress, target: t, at: 0s, duration: 60s, stressors: '--cpu 1'}\n")
    run_dir = bed.runs_dir / "term"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    assert stress_sidecars(bed)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not stress_sidecars(bed)
    [line] = bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("stress", "interrupted")

"""The VM target's faults: systemd units and host iptables on real systemd "VMs", reached over real SSH.

Two Debian containers boot systemd and sshd (chaosbed/debian-systemd, built by `make setup`) on a network
of their own; the control host logs in with a key made for the test. Each VM runs throwaway units whose
own restart policy (Restart=on-failure) would end a fault early if chaos did not hold it.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml
from docker.errors import ImageNotFound
from docker.models.containers import Container
from fixtures.images import vm_image

from tools.chaos.config import ChaosConfig
from tools.chaos.restore import RunLock

pytestmark = pytest.mark.docker

# The image make setup builds, not a copy of its tag.
VM_IMAGE = vm_image()
UNITS = ("cb-kill", "cb-stop", "cb-pause", "cb-restart", "cb-net")
# Two processes per unit, so "every process of the unit" is observable.
UNIT_TEXT = """[Unit]
Description=chaosbed test unit
[Service]
ExecStart=/bin/sh -c 'sleep infinity & exec sleep infinity'
Restart=on-failure
RestartSec=1
[Install]
WantedBy=multi-user.target
"""


@dataclass
class Vm:
    container: Container
    ip: str

    def sh(self, script: str) -> tuple[int, str]:
        code, out = self.container.exec_run(["bash", "-c", script])
        return code, out.decode(errors="replace")

    def active(self, unit: str) -> str:
        # Every unit has a state: an empty answer is systemctl not answering on a loaded host; ask again.
        for _ in range(20):
            state = self.sh(f"systemctl show -p ActiveState --value {unit}")[1].strip()
            if state:
                return state
            time.sleep(0.5)
        return state

    def main_pid(self, unit: str) -> int:
        return int(self.sh(f"systemctl show -p MainPID --value {unit}")[1].strip())

    def process_states(self, unit: str) -> set[str]:
        """ps states (S sleeping, T stopped) of the unit's processes (asked again while none are read:
        an active unit has some, and a loaded host can answer late)."""
        states: set[str] = set()
        for _ in range(20):
            group = self.sh(f"systemctl show -p ControlGroup --value {unit}")[1].strip()
            code, out = self.sh(f"cat /sys/fs/cgroup/systemd{group}/cgroup.procs")
            assert code == 0 and group, out
            outs = [self.sh(f"ps -o stat= -p {pid}")[1].strip()[:1] for pid in out.split()]
            states = {state for state in outs if state}  # a pid gone meanwhile has no state
            if states:
                return states
            time.sleep(0.5)
        return states

    def chaos_rules(self) -> list[str]:
        return [ln for ln in self.sh("iptables -S")[1].splitlines() if "chaosbed:" in ln]

    def dropins(self) -> list[str]:
        return self.sh("ls /run/systemd/system/*.d/zz-chaosbed.conf 2>/dev/null")[1].split()

    def probe(self, ip: str) -> int:
        """Connect to a closed port of ip: 1 = refused (reachable), 124 = no answer (dropped)."""
        return self.sh(f"timeout 2 bash -c 'exec 3<>/dev/tcp/{ip}/9'")[0]


def _boot(client: docker.DockerClient, name: str, network: str, ns: str, pubkey: str) -> Vm:
    container = client.containers.run(
        VM_IMAGE,
        "/lib/systemd/systemd",
        name=name,
        hostname=name,
        labels={f"{ns}.probe": "true"},
        network=network,
        detach=True,
        cap_add=["SYS_ADMIN", "NET_ADMIN"],
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
        tmpfs={"/run": "", "/run/lock": ""},
        environment={"container": "docker"},
    )
    container.reload()
    vm = Vm(container, container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])
    deadline = time.monotonic() + 90
    while vm.sh("systemctl is-system-running")[1].strip() not in ("running", "degraded"):
        assert time.monotonic() < deadline, "systemd did not boot in the VM container"
        time.sleep(0.5)
    units = "".join(f"cat > /etc/systemd/system/{u}.service <<'EOF'\n{UNIT_TEXT}EOF\n" for u in UNITS)
    code, out = vm.sh(
        "set -e; install -d -m 700 /root/.ssh; "
        f"echo '{pubkey}' > /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys\n"
        f"{units}systemctl daemon-reload; systemctl enable --now {' '.join(UNITS)} ssh"
    )
    assert code == 0, out
    return vm


@dataclass
class VmBed:
    bed: Any  # conftest's Bed: scenarios, the CLI, the journal
    a: Vm
    b: Vm
    key: Path

    def hosts_file(self, extra: dict | None = None) -> Path:
        """Services: one per unit on VM a (svc-kill, ...), and `peer` (cb-net on VM b)."""
        common = {"ssh_user": "root", "ssh_key": str(self.key)}
        hosts = {f"svc-{u[3:]}": {"ssh_host": self.a.ip, "unit": u, **common} for u in UNITS}
        hosts["peer"] = {"ssh_host": self.b.ip, "unit": "cb-net", **common}
        hosts.update(extra or {})
        path = self.bed.tmp / "hosts.yml"
        doc = {"ssh_known_hosts": str(self.bed.tmp / "known_hosts"), "hosts": hosts}
        path.write_text(yaml.safe_dump(doc))
        return path

    def start_run(self, name: str, scenario: str, applied: int) -> tuple[Any, Path, Path]:
        """Start `tools chaos run --hosts` on a scenario; returns (process, run dir, hosts file) once
        `applied` faults are in place."""
        hosts = self.hosts_file()
        path = self.bed.scenario(scenario)
        run_dir = self.bed.runs_dir / name
        args = ["run", "--scenario", str(path), "--run-dir", str(run_dir), "--hosts", str(hosts)]
        proc = self.bed.spawn(*args)
        self.bed.wait_applied(run_dir, applied, proc)
        return proc, run_dir, hosts

    def assert_healthy(self) -> None:
        for unit in UNITS:
            assert self.a.active(unit) == "active", unit
            assert self.a.process_states(unit) == {"S"}, unit
        assert self.a.chaos_rules() == [] and self.b.chaos_rules() == []
        assert self.a.dropins() == []


@pytest.fixture(scope="module")
def vms(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory, bed_type: Any
) -> Iterator[VmBed]:
    try:
        docker_client.images.get(VM_IMAGE)
    except ImageNotFound:
        pytest.fail(f"{VM_IMAGE} is not on this engine (run make setup)")
    uid = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("vms")
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    network = docker_client.networks.create(f"cbt{uid}", labels={f"io.cbt{uid}.managed": "true"})
    bed = bed_type(docker_client, uid, tmp, network)
    pubkey = (tmp / "id_ed25519.pub").read_text().strip()
    try:
        a = _boot(docker_client, f"cbt{uid}-vm-a", network.name, bed.ns, pubkey)
        b = _boot(docker_client, f"cbt{uid}-vm-b", network.name, bed.ns, pubkey)
        yield VmBed(bed, a, b, key)
    finally:
        bed.cleanup()


@pytest.fixture
def vmbed(vms: VmBed, tmp_path: Path) -> Iterator[VmBed]:
    vms.bed.tmp = tmp_path  # runs, scenarios and hosts files of this test only
    yield vms
    # Whatever a test did, the next one starts from healthy units.
    for unit in UNITS:
        vms.a.sh(
            f"rm -rf /run/systemd/system/{unit}.service.d; systemctl daemon-reload; "
            f"systemctl kill -s SIGCONT --kill-whom=all {unit}; systemctl reset-failed {unit}; "
            f"systemctl start {unit}"
        )
    vms.a.sh("iptables -F INPUT")
    vms.b.sh("iptables -F INPUT")


def test_lifecycle_faults_hold_against_the_restart_policy_and_restore(vmbed: VmBed) -> None:
    proc, run_dir, _ = vmbed.start_run(
        "life",
        "- {kind: kill, target: svc-kill, at: 0s, restart_after: 5s}\n"
        "- {kind: stop, target: svc-stop, at: 0s, time: 2, restart: true, duration: 5s}\n"
        "- {kind: pause, target: svc-pause, at: 0s, duration: 5s}\n",
        3,
    )
    a = vmbed.a
    # RestartSec=1: without the chaos drop-in, systemd would have started them again by now.
    time.sleep(2)
    assert a.active("cb-kill") in ("failed", "inactive")
    assert a.active("cb-stop") == "inactive"
    assert len(a.dropins()) == 2
    assert a.process_states("cb-pause") == {"T"}  # both processes stopped, not only the main one
    assert a.active("cb-pause") == "active"

    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    vmbed.assert_healthy()
    lines = {line["target"]: line for line in vmbed.bed.timeline(run_dir)}
    assert {t: line["outcome"] for t, line in lines.items()} == dict.fromkeys(
        ("svc-kill", "svc-stop", "svc-pause"), "ok"
    )
    kill = lines["svc-kill"]
    assert kill["executor"] == "systemd" and kill["container"] == f"cb-kill.service@{a.ip}"
    assert any("systemctl kill --signal=SIGKILL --kill-whom=all cb-kill.service" in c for c in kill["call"])
    assert any("systemctl start cb-kill.service" in c for c in kill["call"])
    stop = lines["svc-stop"]
    assert any("TimeoutStopSec=2" in c for c in stop["call"])
    assert 5.0 <= (kill["end_ms"] - kill["start_ms"]) / 1000 < 15


def test_restart_restarts_the_unit_and_removes_its_dropin(vmbed: VmBed) -> None:
    a = vmbed.a
    before = a.main_pid("cb-restart")
    assert before > 0
    proc, run_dir, _ = vmbed.start_run(
        "restart", "- {kind: restart, target: svc-restart, at: 0s, timeout: 2s}\n", 1
    )
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert a.active("cb-restart") == "active"
    after = a.main_pid("cb-restart")
    assert after > 0 and after != before  # a new main process: the unit really restarted
    assert a.dropins() == []
    vmbed.assert_healthy()
    [line] = vmbed.bed.timeline(run_dir)
    assert line["kind"] == "restart" and line["outcome"] == "ok" and line["executor"] == "systemd"
    assert any("TimeoutStopSec=2" in c for c in line["call"])
    assert any("systemctl restart cb-restart.service" in c for c in line["call"])


# A stand-in Spark worker: its loop keeps one child under an executor's command line, as a worker relaunches
# its executor (the real one: molecule/systemd/verify.yml). The loop's own command line is not an executor's.
WORKER_SCRIPT = """#!/bin/bash
while :; do (exec -a org.apache.spark.executor.CoarseGrainedExecutorBackend sleep infinity); sleep 0.2; done
"""
EXECUTOR_UNITS = ("cb-worker", "cb-decoy")


def _executors(vm: Vm, unit: str) -> set[str]:
    """Pids of the unit's processes whose command line is an executor's (what the stand-in runs)."""
    group = vm.sh(f"systemctl show -p ControlGroup --value {unit}")[1].strip()
    procs = vm.sh(f"cat /sys/fs/cgroup/systemd{group}/cgroup.procs")[1].split()
    return {
        p for p in procs if "CoarseGrainedExecutorBackend" in vm.sh(f"tr '\\0' ' ' < /proc/{p}/cmdline")[1]
    }


def test_kill_executor_kills_only_the_executors_of_the_worker_unit(vmbed: VmBed) -> None:
    a, common = vmbed.a, {"ssh_host": vmbed.a.ip, "ssh_user": "root", "ssh_key": str(vmbed.key)}
    text = "[Service]\\nExecStart=/bin/bash /usr/local/bin/cb-worker\\n"
    units = "".join(f"printf '{text}' > /etc/systemd/system/{u}.service; " for u in EXECUTOR_UNITS)
    code, out = a.sh(
        f"cat > /usr/local/bin/cb-worker <<'EOF'\n{WORKER_SCRIPT}EOF\n"
        f"{units}systemctl daemon-reload && systemctl start {' '.join(EXECUTOR_UNITS)}"
    )
    assert code == 0, out
    try:
        vmbed.bed.wait_for("stand-in executors", lambda: all(_executors(a, u) for u in EXECUTOR_UNITS))
        executor, decoy, worker = (
            _executors(a, "cb-worker"),
            _executors(a, "cb-decoy"),
            a.main_pid("cb-worker"),
        )
        hosts = vmbed.hosts_file(
            {"worker": {**common, "unit": "cb-worker"}, "idle": {**common, "unit": "cb-kill"}}
        )
        path = vmbed.bed.scenario(
            "- {kind: kill-executor, target: worker, at: 0s}\n- {kind: kill-executor, target: idle, at: 0s}\n"
        )
        run_dir = vmbed.bed.runs_dir / "executor"
        result = vmbed.bed.cli(
            "run", "--scenario", str(path), "--run-dir", str(run_dir), "--hosts", str(hosts)
        )
        assert result.returncode == 1, result  # the idle unit's fault failed; nothing else did
        lines = {line["target"]: line for line in vmbed.bed.timeline(run_dir)}
        assert lines["worker"]["outcome"] == "ok" and lines["worker"]["executor"] == "systemd"
        assert f"SIGKILL to pid {' '.join(sorted(executor))}" in lines["worker"]["call"]
        assert lines["idle"]["outcome"] == "failed: idle runs no Spark executor (is spark_deploy standalone?)"
        # The "worker" relaunched its executor; the worker itself and the other unit's executor are untouched.
        vmbed.bed.wait_for("a new executor", lambda: _executors(a, "cb-worker") - executor)
        assert not _executors(a, "cb-worker") & executor
        assert a.main_pid("cb-worker") == worker and a.active("cb-worker") == "active"
        assert _executors(a, "cb-decoy") == decoy
        restored = vmbed.bed.cli("restore", "--run-dir", str(run_dir))
        assert restored.returncode == 0 and "nothing to restore" in restored.stdout, restored
        vmbed.assert_healthy()
    finally:
        a.sh(
            f"systemctl stop {' '.join(EXECUTOR_UNITS)}; rm -f /usr/local/bin/cb-worker "
            + " ".join(f"/etc/systemd/system/{u}.service" for u in EXECUTOR_UNITS)
            + "; systemctl daemon-reload"
        )


def test_loss_and_partition_on_hosts_keep_ssh_open(vmbed: VmBed) -> None:
    a, b = vmbed.a, vmbed.b
    assert b.probe(a.ip) == 1 and a.probe(b.ip) == 1
    proc, run_dir, _ = vmbed.start_run(
        "net",
        "- {kind: iptables partition, target: svc-net, peers: [peer], at: 0s, duration: 6s}\n"
        "- {kind: iptables loss, target: peer, at: 0s, duration: 6s, probability: 1.0}\n"
        "- {kind: netem delay, target: svc-net, at: 0s, duration: 3s, time: 100}\n",
        2,
    )
    assert b.probe(a.ip) == 124  # a is cut off from its peer b
    assert a.probe(b.ip) == 124  # and b drops everything arriving...
    ssh = subprocess.run(  # ...except SSH, so the fault can always be undone
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-i",
            str(vmbed.key),
            "-o",
            "ConnectTimeout=3",
            f"root@{b.ip}",
            "true",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert ssh.returncode == 0, ssh.stderr
    [accept, *drops] = a.chaos_rules()
    assert "--dport 22" in accept and "-j ACCEPT" in accept
    assert drops == [f'-A INPUT -s {b.ip}/32 -i eth0 -m comment --comment "chaosbed:net/01-svc-net" -j DROP']

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert a.chaos_rules() == [] and b.chaos_rules() == []
    assert b.probe(a.ip) == 1 and a.probe(b.ip) == 1
    outcomes = {line["kind"]: line["outcome"] for line in vmbed.bed.timeline(run_dir)}
    assert outcomes == {"iptables partition": "ok", "iptables loss": "ok", "netem delay": "unsupported"}


def test_sigkill_of_the_injector_then_restore_from_the_journal_alone(vmbed: VmBed) -> None:
    proc, run_dir, hosts = vmbed.start_run(
        "crash",
        "- {kind: kill, target: svc-kill, at: 0s, restart_after: 60s}\n"
        "- {kind: stop, target: svc-stop, at: 0s, time: 1}\n"
        "- {kind: pause, target: svc-pause, at: 0s, duration: 60s}\n"
        "- {kind: iptables partition, target: svc-net, peers: [peer], at: 0s, duration: 60s}\n",
        4,
    )
    vmbed.bed.kill_hard(proc)
    assert proc.returncode == -signal.SIGKILL
    a = vmbed.a
    time.sleep(1.5)  # past RestartSec: the drop-in still holds them down
    assert a.active("cb-kill") != "active" and a.active("cb-stop") == "inactive"
    assert a.process_states("cb-pause") == {"T"} and len(a.chaos_rules()) == 2

    hosts.unlink()  # the journal carries every host and unit: no hosts file needed to restore
    first = vmbed.bed.cli("restore", "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("restored-after-crash") == 4
    vmbed.assert_healthy()
    again = vmbed.bed.cli("restore", "--run-dir", str(run_dir))
    assert again.returncode == 0 and "nothing to restore" in again.stdout


def install_stress_ng(client: docker.DockerClient, vm: Vm, tmp: Path) -> None:
    """Debian's stress-ng onto a VM without a network: the binary, and the libraries the VM lacks, copied
    from the stress-ng image (which `make setup` builds from the same suite)."""
    if vm.sh("command -v stress-ng")[0] == 0:
        return
    image = ChaosConfig().stress_image
    listing = client.containers.run(image, ["/usr/bin/stress-ng"], entrypoint=["ldd"], remove=True).decode()
    libs = [
        parts[2]
        for parts in (ln.split() for ln in listing.splitlines())
        if len(parts) > 2 and "/" in parts[2]
    ]
    missing = [lib for lib in libs if vm.sh(f"test -e {lib}")[0] != 0]
    # Through a bind mount: the log driver would mangle a binary stdout.
    out = tmp / "stress-ng.tar"
    cmd = ["-chf", f"/out/{out.name}", "/usr/bin/stress-ng", *missing]
    client.containers.run(image, cmd, entrypoint=["tar"], volumes={str(tmp): {"bind": "/out"}}, remove=True)
    assert vm.container.put_archive("/", out.read_bytes())
    assert vm.sh("ldconfig && stress-ng --version")[0] == 0


def test_stress_is_a_transient_unit_in_the_services_slice_and_restore_stops_it(vmbed: VmBed) -> None:
    a = vmbed.a
    install_stress_ng(vmbed.bed.client, a, vmbed.bed.tmp)
    scenario = "- {kind: stress, target: svc-stop, at: 0s, duration: 60s, stressors: '--cpu 1'}\n"
    proc, run_dir, _ = vmbed.start_run("stress", scenario, 1)
    unit = f"chaosbed-stress-{run_dir.name}-01-svc-stop.service"
    assert a.active(unit) == "active"
    group = a.sh(f"systemctl show -p ControlGroup --value {unit}")[1].strip()
    service_group = a.sh("systemctl show -p ControlGroup --value cb-stop.service")[1].strip()
    assert group.rsplit("/", 1)[0] == service_group.rsplit("/", 1)[0]  # the service's slice
    procs = a.sh(f"cat /sys/fs/cgroup/systemd{group}/cgroup.procs")[1].split()
    assert procs and all(a.sh(f"cat /proc/{pid}/comm")[1].strip().startswith("stress-ng") for pid in procs)

    vmbed.bed.kill_hard(proc)  # the unit outlives the injector...
    assert a.active(unit) == "active"
    restored = vmbed.bed.cli("restore", "--run-dir", str(run_dir))  # ...until restore stops it
    assert restored.returncode == 0, restored.stderr
    assert a.sh(f"systemctl show -p LoadState --value {unit}")[1].strip() == "not-found"
    [line] = vmbed.bed.timeline(run_dir)
    assert (line["kind"], line["outcome"], line["executor"]) == ("stress", "restored-after-crash", "systemd")
    assert any(f"systemd-run --unit={unit} --slice=system.slice" in call for call in line["call"])

    # A run that ends normally stops it too (the undo), and the service was never touched.
    short = "- {kind: stress, target: svc-stop, at: 0s, duration: 2s, stressors: '--vm 1 --vm-bytes 16m'}\n"
    proc, run_dir, _ = vmbed.start_run("stress-ok", short, 1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    [line] = vmbed.bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("stress", "ok")
    assert a.sh("systemctl list-units --all --plain --no-legend 'chaosbed-stress-*'")[1].strip() == ""
    vmbed.assert_healthy()

    # A stress unit whose journal is lost: `restore --all --hosts` stops it.
    a.sh(
        "systemd-run --unit=chaosbed-stress-lost-01-x.service --collect --quiet "
        "stress-ng --cpu 1 --timeout 60s"
    )
    assert a.active("chaosbed-stress-lost-01-x.service") == "active"
    swept = vmbed.bed.cli("restore", "--all", "--hosts", str(vmbed.hosts_file()))
    assert swept.returncode == 0, swept.stderr
    assert "stress unit chaosbed-stress-lost-01-x.service" in swept.stdout
    assert a.sh("systemctl list-units --all --plain --no-legend 'chaosbed-stress-*'")[1].strip() == ""


def test_restore_all_sweeps_stray_rules_and_dropins_on_hosts(vmbed: VmBed) -> None:
    a = vmbed.a
    # What a run whose journal was lost would leave: a tagged rule, a unit held down by a drop-in.
    a.sh("iptables -I INPUT -p udp --dport 9 -m comment --comment chaosbed:lost/01-x -j DROP")
    a.sh(
        "mkdir -p /run/systemd/system/cb-stop.service.d && printf '[Service]\\nRestart=no\\n' "
        "> /run/systemd/system/cb-stop.service.d/zz-chaosbed.conf && systemctl daemon-reload && "
        "systemctl stop cb-stop"
    )
    assert a.active("cb-stop") == "inactive"
    result = vmbed.bed.cli("restore", "--all", "--hosts", str(vmbed.hosts_file()))
    assert result.returncode == 0, result.stderr
    assert "chaosbed:lost/01-x" in result.stdout and "drop-in of cb-stop.service" in result.stdout
    vmbed.assert_healthy()


def test_dry_run_prints_the_ssh_command_lines_and_changes_nothing(vmbed: VmBed) -> None:
    path = vmbed.bed.scenario("- {kind: kill, target: svc-kill, at: 0s, restart_after: 5s}\n")
    result = vmbed.bed.cli("run", "--scenario", str(path), "--dry-run", "--hosts", str(vmbed.hosts_file()))
    assert result.returncode == 0, result.stderr
    assert f"ssh root@{vmbed.a.ip}:22 systemctl kill --signal=SIGKILL --kill-whom=all cb-kill.service" in (
        result.stdout
    )
    vmbed.assert_healthy()


@pytest.mark.parametrize(
    ("scenario", "hosts_extra", "message"),
    [
        ("- {kind: rm, target: svc-kill, at: 0s, confirm: true}\n", None, "rm has no systemd counterpart"),
        (
            "- {kind: kill, target: ghost, at: 0s}\n",
            {"ghost": {"ssh_host": "{a}", "unit": "nope", "ssh_user": "root", "ssh_key": "{key}"}},
            "target ghost: no unit nope.service on",
        ),
        (
            "- {kind: kill, target: far, at: 0s}\n",
            {
                "far": {
                    "ssh_host": "{a}",
                    "ssh_port": 2222,
                    "unit": "x",
                    "ssh_user": "root",
                    "ssh_key": "{key}",
                }
            },
            "target far: ssh root@",
        ),
        (
            "- {kind: iptables partition, target: svc-net, peers: [nocontainer], at: 0s, duration: 5s}\n",
            None,
            "must both be systemd hosts or both containers",
        ),
        (
            "- {kind: disk fill, target: svc-kill, at: 0s, duration: 5s}\n",
            None,
            "disk fill on a VM needs 'volume'",
        ),
    ],
)
def test_refused_before_anything_is_touched(vmbed: VmBed, scenario: str, hosts_extra, message: str) -> None:
    if hosts_extra:
        text = yaml.safe_dump(hosts_extra).replace("'{a}'", vmbed.a.ip).replace("'{key}'", str(vmbed.key))
        hosts_extra = yaml.safe_load(text)
    path = vmbed.bed.scenario(scenario)
    result = vmbed.bed.cli("run", "--scenario", str(path), "--hosts", str(vmbed.hosts_file(hosts_extra)))
    assert result.returncode == 2, result
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    vmbed.assert_healthy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hosts: [a]\n", "expected a mapping with 'hosts:"),
        ("hosts: {k: {unit: kafka}}\n", "host 'k': 'ssh_host' is required"),
        ("hosts: {k: {ssh_host: h, unit: kafka, colour: red}}\n", "unknown key(s) colour"),
        ("hosts: {k: {ssh_host: h, unit: 'ka fka'}}\n", "is not a systemd unit name"),
        ("hosts: {k: {ssh_host: h, unit: kafka, ssh_port: 0}}\n", "ssh_port must be a port number"),
        ("hosts: {k: {ssh_host: h, unit: kafka, ssh_key: /nonexistent/key}}\n", "does not exist"),
        ("hosts: {k: [\n", "invalid YAML"),
        (
            "hosts:\n  k: {ssh_host: h, unit: postgresql}\n  k: {ssh_host: h, unit: chaosbed-spark-worker}\n",
            "'k' is given twice (line 3)",
        ),
    ],
)
def test_bad_hosts_files_are_one_line_errors(bed: Any, text: str, message: str) -> None:
    hosts = bed.tmp / "hosts.yml"
    hosts.write_text(text)
    path = bed.scenario("- {kind: kill, target: k, at: 0s}\n")
    result = bed.cli("plan", "--scenario", str(path), "--offline", "--hosts", str(hosts))
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_restore_refuses_hosts_without_all(bed: Any) -> None:
    result = bed.cli("restore", "--run-dir", str(bed.tmp), "--hosts", str(bed.tmp / "h.yml"))
    assert result.returncode == 2 and "--hosts goes with --all" in result.stderr


def test_disk_fill_on_a_host_fills_the_volume_and_restore_removes_the_ballast(vmbed: VmBed) -> None:
    # A filesystem of its own on the VM (a tmpfs: the VM containers have no loop devices).
    a = vmbed.a
    mount = "mkdir -p /cbt-data && (mountpoint -q /cbt-data || mount -t tmpfs -o size=32m tmpfs /cbt-data)"
    assert a.sh(mount)[0] == 0
    try:
        proc, run_dir, _ = vmbed.start_run(
            "fill", "- {kind: disk fill, target: svc-kill, volume: /cbt-data, at: 0s, duration: 60s}\n", 1
        )
        vmbed.bed.kill_hard(proc)
        assert a.sh("ls -A /cbt-data")[1].split() == [".chaosbed-ballast-fill-01-svc-kill"]
        code, out = a.sh("dd if=/dev/zero of=/cbt-data/more bs=64k count=16 2>&1")
        assert code != 0 and "No space left on device" in out
        first = vmbed.bed.cli("restore", "--run-dir", str(run_dir))
        assert first.returncode == 0, first.stderr
        assert a.sh("ls -A /cbt-data")[1].split() == ["more"]
        [line] = vmbed.bed.timeline(run_dir)
        assert (line["kind"], line["outcome"]) == ("disk fill", "restored-after-crash")
        assert "observed: cb-kill.service active (running)" in line["call"]
        vmbed.assert_healthy()
    finally:
        a.sh("umount /cbt-data; rmdir /cbt-data")


# A service that needs its disk: it writes 1 MiB, then runs; on a full disk it fails (no restart policy).
WRITER_UNIT = """[Service]
ExecStart=/bin/sh -c 'dd if=/dev/zero of=/cbt-data/w bs=64k count=16 && exec sleep infinity'
"""


def test_restore_all_sweeps_ballasts_on_hosts_and_starts_what_the_full_disk_failed(vmbed: VmBed) -> None:
    """A disk fill whose injector was SIGKILLed and whose journal is lost: `restore --all --hosts` finds the
    ballast on the host's filesystem, keeps the ballast of a run still active, and once no run is active
    starts the hosts-file unit that the full disk made fail."""
    a = vmbed.a
    mount = "mkdir -p /cbt-data && (mountpoint -q /cbt-data || mount -t tmpfs -o size=32m tmpfs /cbt-data)"
    unit = f"cat > /etc/systemd/system/cbt-writer.service <<'EOF'\n{WRITER_UNIT}EOF\nsystemctl daemon-reload"
    assert a.sh(mount)[0] == 0 and a.sh(unit)[0] == 0
    busy_dir = vmbed.bed.runs_dir / "busy"  # a run in progress: its lock is held
    kept = "/cbt-data/.chaosbed-ballast-busy-01-svc-kill"
    lost = "/cbt-data/.chaosbed-ballast-lost-01-svc-kill"
    try:
        assert a.sh(f"fallocate -l 1M {kept}")[0] == 0
        proc, run_dir, _ = vmbed.start_run(
            "lost", "- {kind: disk fill, target: svc-kill, volume: /cbt-data, at: 0s, duration: 60s}\n", 1
        )
        vmbed.bed.kill_hard(proc)
        shutil.rmtree(run_dir)  # the journal is lost
        assert sorted(a.sh("ls -A /cbt-data")[1].split()) == [kept.rsplit("/", 1)[1], lost.rsplit("/", 1)[1]]
        a.sh("systemctl start cbt-writer")
        assert a.active("cbt-writer") == "failed"  # No space left on device
        writer = {"ssh_host": a.ip, "unit": "cbt-writer", "ssh_user": "root", "ssh_key": str(vmbed.key)}
        hosts = str(vmbed.hosts_file({"svc-writer": writer}))
        busy_dir.mkdir(parents=True)
        (busy_dir / "chaos-journal.jsonl").touch()
        busy = RunLock(busy_dir)
        assert busy.acquire()
        try:
            first = vmbed.bed.cli("restore", "--all", "--hosts", hosts)
            assert first.returncode == 0, first.stderr
            assert f"rm {lost}" in first.stdout and "busy-01" not in first.stdout, first.stdout
            assert a.sh("ls -A /cbt-data")[1].split() == [kept.rsplit("/", 1)[1], "w"]  # w: the writer's try
            assert a.active("cbt-writer") == "failed"  # not while a run is active: it may be that run's doing
        finally:
            busy.release()
        second = vmbed.bed.cli("restore", "--all", "--hosts", hosts)
        assert second.returncode == 0, second.stderr
        assert f"rm {kept}" in second.stdout, second.stdout
        started = [ln for ln in second.stdout.splitlines() if "systemctl start" in ln]
        assert len(started) == 1 and "systemctl start cbt-writer" in started[0], second.stdout
        assert a.active("cbt-writer") == "active"
        assert a.sh("stat -c %s /cbt-data/w")[1].strip() == str(1024 * 1024)  # it could write again
        third = vmbed.bed.cli("restore", "--all", "--hosts", hosts)
        assert third.returncode == 0 and "nothing to restore" in third.stdout, third.stdout
        assert {u: a.active(u) for u in UNITS} == dict.fromkeys(UNITS, "active")  # the others left alone
    finally:
        a.sh("systemctl stop cbt-writer; systemctl reset-failed cbt-writer; rm /etc/systemd/system/cbt-w*")
        a.sh("systemctl daemon-reload; umount /cbt-data; rmdir /cbt-data")

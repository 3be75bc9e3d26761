"""`disk fill` on real containers whose data sits on a size-capped filesystem (a loop-mounted ext4 image,
as roles/capped_volume makes): the target's writes fail with ENOSPC while the ballast is there, the
undo and `restore` (also after SIGKILL) remove it, and bad parameters are refused before anything."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fixtures.images import VERSIONS_FILE

from tools.run.layout import JOURNAL_FILE

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB ext4 filesystem (no root reserve), loop-mounted; yields its `data` directory."""
    image, mount = tmp_path / "volume.img", Path(f"/tmp/cbt-capped-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", str(image), "128M"], check=True)
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.fail(
            f"cannot loop-mount a filesystem here (root and /dev/loop* needed): {done.stderr.strip()}"
        )
    (mount / "data").mkdir()
    try:
        yield mount / "data"
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)
        mount.rmdir()


def postgres_image() -> str:
    versions = yaml.safe_load(VERSIONS_FILE.read_text())
    return "chaosbed/postgres:{chaosbed_postgres_version}-{chaosbed_image_revision}".format(**versions)


def ballasts(data: Path) -> list[Path]:
    return sorted(data.glob(".chaosbed-ballast-*"))


def free_bytes(data: Path) -> int:
    st = os.statvfs(data)
    return st.f_bavail * st.f_frsize


def write(bed, name: str, path: str, mib: int) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    cid = bed.client.api.inspect_container(f"{bed.prefix}{name}")["Id"]
    cmd = f"dd if=/dev/zero of={path} bs=1M count={mib} conv=fsync 2>&1; echo exit=$?"
    return subprocess.run(
        ["docker", "exec", cid, "sh", "-c", cmd], capture_output=True, text=True, timeout=60
    )


def test_postgres_insert_fails_with_enospc_until_the_fill_is_undone(bed, capped: Path) -> None:
    image = postgres_image()
    os.chown(capped, 100, 102)  # the image's postgres uid/gid (roles/postgres reads them from the image)
    capped.chmod(0o700)
    pg = bed.client.containers.run(
        image,
        name=f"{bed.prefix}pg",
        labels={f"{bed.ns}.managed": "true", f"{bed.ns}.service": "pg"},
        environment={"POSTGRES_PASSWORD": "x"},
        mounts=[{"Type": "bind", "Source": str(capped), "Target": "/var/lib/postgresql/data"}],
        network=bed.network.name,
        detach=True,
    )

    def psql(sql: str) -> subprocess.CompletedProcess[str]:
        psql = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-U", "chaosbed", "-d", "postgres", "-c", sql]
        return subprocess.run(
            ["docker", "exec", pg.id, *psql],
            capture_output=True,
            text=True,
            timeout=60,
        )

    bed.wait_for("PostgreSQL up", lambda: psql("select 1").returncode == 0, 60)
    assert psql("create table t (v text)").returncode == 0

    path = bed.scenario("- {kind: disk fill, target: pg, at: 0s, duration: 8s, free: 0}\n")
    run_dir = bed.runs_dir / "fill"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    assert len(ballasts(capped)) == 1 and free_bytes(capped) < MiB
    # 64 MiB of rows: the heap must grow, and the filesystem has no block left for it.
    refused = psql("insert into t select repeat('x', 1000) from generate_series(1, 65536)")
    assert refused.returncode != 0
    assert "No space left on device" in refused.stderr

    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert ballasts(capped) == []
    [line] = bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("disk fill", "ok")
    assert any(call.startswith("fallocate ") for call in line["call"])
    assert any(call.startswith("observed: ") for call in line["call"])
    assert any(call.startswith("rm ") for call in line["call"])
    # The server came back (the undo starts it if the full disk stopped it) and takes writes again.
    bed.wait_for("PostgreSQL up again", lambda: psql("select 1").returncode == 0, 60)
    assert psql("insert into t select repeat('x', 1000) from generate_series(1, 1024)").returncode == 0


def _fill_whose_injector_was_killed(bed, capped: Path) -> Path:  # type: ignore[no-untyped-def]
    bed.service("t", mounts=[{"Type": "bind", "Source": str(capped), "Target": "/data"}])
    path = bed.scenario("- {kind: disk fill, target: t, at: 0s, duration: 60s, free: 16MiB}\n")
    dry = bed.cli("run", "--scenario", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"fallocate {capped}/.chaosbed-ballast-" in dry.stdout and "until 16MiB is free" in dry.stdout
    run_dir = bed.runs_dir / "crash"
    proc = bed.spawn("run", "--scenario", str(path), "--run-dir", str(run_dir))
    bed.wait_applied(run_dir, 1, proc)
    bed.kill_hard(proc)
    return run_dir


def test_sigkill_of_the_injector_leaves_the_ballast_and_restore_removes_it(bed, capped: Path) -> None:
    run_dir = _fill_whose_injector_was_killed(bed, capped)
    assert len(ballasts(capped)) == 1
    assert 15 * MiB <= free_bytes(capped) <= 17 * MiB  # 16 MiB left, within a block or two
    full = write(bed, "t", "/data/more", 32)
    assert "No space left on device" in full.stdout and "exit=0" not in full.stdout

    result = bed.cli("restore", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    assert ballasts(capped) == []
    [line] = bed.timeline(run_dir)
    assert (line["kind"], line["outcome"]) == ("disk fill", "restored-after-crash")
    again = bed.cli("restore", "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert len(bed.timeline(run_dir)) == 1 and bed.state("t")["Running"]
    assert "exit=0" in write(bed, "t", "/data/more", 32).stdout


def test_restore_all_sweeps_a_ballast_whose_journal_is_lost(bed, capped: Path) -> None:
    run_dir = _fill_whose_injector_was_killed(bed, capped)
    (run_dir / JOURNAL_FILE).unlink()
    assert len(ballasts(capped)) == 1
    result = bed.cli("restore", "--all")
    assert result.returncode == 0, result.stderr
    assert ballasts(capped) == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("free: -1MiB", "'free' must be a size like 0, 64MiB or 1GiB"),
        ("free: 1GiB", "'free' 1GiB is not less than"),
        ("free: 0, volume: /nope", "has no writable volume at /nope"),
        ("free: 0, volume: relative", "'volume' must be an absolute path"),
    ],
)
def test_bad_parameters_exit_2_with_one_line_and_touch_nothing(
    bed, capped: Path, fault: str, message: str
) -> None:
    bed.service("t", mounts=[{"Type": "bind", "Source": str(capped), "Target": "/data"}])
    path = bed.scenario(f"- {{kind: disk fill, target: t, at: 0s, duration: 5s, {fault}}}\n")
    result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "bad"))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ballasts(capped) == []


def test_a_volume_on_the_host_root_filesystem_is_refused(bed, tmp_path: Path) -> None:
    # Filling it would fill the host's disk: the roles put data on capped volumes.
    host_dir = Path("/var/tmp") / f"cbt-{bed.uid}"
    host_dir.mkdir()
    try:
        bed.service("t", mounts=[{"Type": "bind", "Source": str(host_dir), "Target": "/data"}])
        path = bed.scenario("- {kind: disk fill, target: t, at: 0s, duration: 5s}\n")
        result = bed.cli("run", "--scenario", str(path), "--run-dir", str(bed.runs_dir / "root"))
        assert result.returncode == 2, result.stderr
        assert "on the host's root filesystem" in result.stderr
        assert list(host_dir.iterdir()) == []
    finally:
        host_dir.rmdir()

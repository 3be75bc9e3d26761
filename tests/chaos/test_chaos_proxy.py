"""The proxy kinds on real containers: a chaosbed/toxiproxy container (built by `make setup`) proxies a
client to a server of the test bed; each fault's effect is measured on that path through the proxy
(added latency and bandwidth within 20 % of what was asked, no data through a timeout), and the toxics
are gone after the undo, and after a SIGKILLed injector once `tools chaos restore` ran."""

from __future__ import annotations

import json
import socket
import statistics
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound

from tools.chaos.toxiproxy import proxy_name

pytestmark = pytest.mark.docker

TOXIPROXY_IMAGE = "chaosbed/toxiproxy:2.5.0-3"
SERVER_IMAGE = "chaosbed/jre:bookworm-3"  # for its python3
PROXY = proxy_name("client", "server")
LISTEN = 20000
# One byte in, one byte back (a round trip); "b<n>" in, n bytes back (a transfer).
SERVER = """
import socket, threading
def serve(conn):
    with conn:
        while True:
            head = conn.recv(16)
            if not head:
                return
            if head[:1] == b"b":
                conn.sendall(b"x" * int(head[1:]))
            else:
                conn.sendall(head)
srv = socket.create_server(("0.0.0.0", 9000))
while True:
    threading.Thread(target=serve, args=(srv.accept()[0],), daemon=True).start()
"""


class ProxyBed:
    def __init__(self, bed: Any) -> None:
        self.bed = bed
        bed.service("client")
        bed.client.containers.run(
            SERVER_IMAGE,
            ["python3", "-c", SERVER],
            name=f"{bed.prefix}server",
            labels={f"{bed.ns}.managed": "true", f"{bed.ns}.service": "server"},
            network=bed.network.name,
            detach=True,
        )
        proxy = bed.client.containers.run(
            TOXIPROXY_IMAGE,
            name=f"{bed.prefix}toxiproxy",
            labels={f"{bed.ns}.managed": "true"},
            network=bed.network.name,
            ports={"8474/tcp": ("127.0.0.1", None), f"{LISTEN}/tcp": ("127.0.0.1", None)},
            detach=True,
        )
        proxy.reload()
        ports = proxy.attrs["NetworkSettings"]["Ports"]
        self.api = f"http://127.0.0.1:{ports['8474/tcp'][0]['HostPort']}"
        self.port = int(ports[f"{LISTEN}/tcp"][0]["HostPort"])
        bed.extra_env["CHAOSBED_TOXIPROXY_URL"] = self.api
        deadline = time.monotonic() + 30
        while True:
            try:
                self.request("GET", "/version")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        upstream = f"{bed.prefix}server:9000"
        self.request("POST", "/proxies", {"name": PROXY, "listen": f"0.0.0.0:{LISTEN}", "upstream": upstream})
        self.wait_server()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as response:
            text = response.read().decode()
        return json.loads(text) if text.strip().startswith(("{", "[")) else text

    def toxics(self) -> list[str]:
        return sorted(t["name"] for t in self.request("GET", f"/proxies/{PROXY}/toxics"))

    def connect(self, timeout: float = 5) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def wait_server(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.round_trip_ms()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def round_trip_ms(self, count: int = 5) -> float:
        """Median of `count` one-byte round trips on one connection through the proxy."""
        with self.connect() as sock:
            times = []
            for _ in range(count):
                start = time.perf_counter()
                sock.sendall(b"p")
                if sock.recv(1) != b"p":
                    raise OSError("no echo")
                times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    def transfer_kb_s(self, size: int) -> float:
        """KB/s (1000 bytes) of `size` bytes from the server through the proxy."""
        with self.connect(timeout=30) as sock:
            sock.sendall(f"b{size}".encode())
            start, got = time.perf_counter(), 0
            while got < size:
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError(f"closed after {got} bytes")
                got += len(chunk)
            return size / 1000 / (time.perf_counter() - start)


@pytest.fixture(scope="module")
def pbed(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory, bed_type: Any
) -> Iterator[ProxyBed]:
    for image in (TOXIPROXY_IMAGE, SERVER_IMAGE):
        try:
            docker_client.images.get(image)
        except ImageNotFound:
            pytest.fail(f"{image} is not on this engine (run make setup)")
    uid = uuid.uuid4().hex[:8]
    network = docker_client.networks.create(f"cbt{uid}", labels={f"io.cbt{uid}.managed": "true"})
    bed = bed_type(docker_client, uid, tmp_path_factory.mktemp("proxy"), network)
    try:
        yield ProxyBed(bed)
    finally:
        bed.cleanup()


def scenario(pbed: ProxyBed, fault: str, name: str) -> Path:
    return pbed.bed.scenario(f"name: {name}\nfaults:\n  - {{{fault}}}\n", f"{name}.yml")


def run_dir(pbed: ProxyBed, name: str) -> Path:
    return pbed.bed.tmp / "runs" / f"{name}-{uuid.uuid4().hex[:6]}"


def during(pbed: ProxyBed, fault: str, name: str) -> tuple[Any, Path]:
    """Start a chaos run of one fault; return once its toxics are in place."""
    rdir = run_dir(pbed, name)
    proc = pbed.bed.spawn("run", "--scenario", str(scenario(pbed, fault, name)), "--run-dir", str(rdir))
    pbed.bed.wait_applied(rdir, 1, proc)
    return proc, rdir


def finish(pbed: ProxyBed, proc: Any, rdir: Path) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert pbed.toxics() == []  # the undo removed them
    [line] = pbed.bed.timeline(rdir)
    assert line["outcome"] == "ok", line
    return line


def test_latency_adds_the_asked_delay_on_the_path(pbed: ProxyBed) -> None:
    base = pbed.round_trip_ms()
    fault = "kind: proxy latency, target: server, at: 0s, duration: 3s, latency: 200, jitter: 0"
    proc, rdir = during(pbed, fault, "latency")
    added = pbed.round_trip_ms() - base
    line = finish(pbed, proc, rdir)
    assert 160 <= added <= 240, added  # downstream (the default): once per round trip
    assert line["params"]["latency"] == 200
    assert any(f"/proxies/{PROXY}/toxics type=latency stream=downstream" in c for c in line["call"]), line
    assert pbed.round_trip_ms() - base < 50  # gone again


def test_latency_both_directions_adds_it_twice(pbed: ProxyBed) -> None:
    base = pbed.round_trip_ms()
    fault = (
        "kind: proxy latency, target: client, paths: outbound, peer: server, direction: both, "
        "at: 0s, duration: 3s, latency: 100"
    )
    proc, rdir = during(pbed, fault, "both")
    assert len(pbed.toxics()) == 2
    added = pbed.round_trip_ms() - base
    finish(pbed, proc, rdir)
    assert 160 <= added <= 240, added


def test_bandwidth_caps_the_path(pbed: ProxyBed) -> None:
    fault = "kind: proxy bandwidth, target: server, at: 0s, duration: 5s, rate: 500"
    proc, rdir = during(pbed, fault, "bandwidth")
    rate = pbed.transfer_kb_s(1_000_000)
    finish(pbed, proc, rdir)
    assert 400 <= rate <= 600, rate
    assert pbed.transfer_kb_s(1_000_000) > 2000  # uncapped again


def test_timeout_stops_data(pbed: ProxyBed) -> None:
    fault = "kind: proxy timeout, target: server, at: 0s, duration: 3s"
    proc, rdir = during(pbed, fault, "timeout")
    with pbed.connect(timeout=1.5) as sock:
        sock.sendall(b"p")
        with pytest.raises(TimeoutError):
            sock.recv(1)
    finish(pbed, proc, rdir)
    assert pbed.round_trip_ms(1) < 1000


def test_dry_run_prints_the_calls_and_touches_nothing(pbed: ProxyBed) -> None:
    fault = "kind: proxy slicer, target: server, at: 0s, duration: 5s, average_size: 10, delay: 100"
    result = pbed.bed.cli("run", "--dry-run", "--scenario", str(scenario(pbed, fault, "dry")))
    assert result.returncode == 0, result.stderr
    assert f"/proxies/{PROXY}/toxics type=slicer stream=downstream" in result.stdout
    assert "average_size=10 size_variation=0 delay=100" in result.stdout
    assert f"DELETE {pbed.api}/proxies/{PROXY}/toxics/" in result.stdout
    assert pbed.toxics() == []


def test_sigkilled_injector_leaves_toxics_that_restore_removes(pbed: ProxyBed) -> None:
    fault = "kind: proxy reset_peer, target: server, direction: both, at: 0s, duration: 5m, timeout: 100"
    proc, rdir = during(pbed, fault, "crash")
    pbed.bed.kill_hard(proc)
    left = pbed.toxics()
    assert len(left) == 2, left
    intent = next(r for r in pbed.bed.journal(rdir) if r["type"] == "intent")
    assert sorted(t["toxic"] for t in intent["undo"]["toxics"]) == left  # the journal says which
    restored = pbed.bed.cli("restore", "--run-dir", str(rdir))
    assert restored.returncode == 0, restored.stderr
    assert pbed.toxics() == []
    assert pbed.bed.timeline(rdir)[0]["outcome"] == "restored-after-crash"
    again = pbed.bed.cli("restore", "--run-dir", str(rdir))
    assert again.returncode == 0, again.stderr
    assert pbed.round_trip_ms(1) < 1000


def test_restore_all_sweeps_toxics_a_lost_journal_left(pbed: ProxyBed) -> None:
    fault = "kind: proxy bandwidth, target: server, at: 0s, duration: 5m, rate: 10"
    proc, rdir = during(pbed, fault, "lost")
    pbed.bed.kill_hard(proc)
    (rdir / "chaos-journal.jsonl").unlink()
    assert len(pbed.toxics()) == 1
    swept = pbed.bed.cli("restore", "--all")
    assert swept.returncode == 0, swept.stderr
    assert f"toxiproxy {PROXY}: toxic chaosbed_" in swept.stdout
    assert pbed.toxics() == []


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("kind: proxy latency, latency: -5", "'latency' must be between 1"),
        ("kind: proxy bandwidth, rate: 0", "'rate' must be between 1"),
        ("kind: proxy latency, direction: sideways", "'direction' must be one of"),
        ("kind: proxy latency, paths: everywhere", "'paths' must be one of"),
        ("kind: proxy teleport", "unknown kind"),
        ("kind: proxy latency, peer: nowhere", "unknown target 'nowhere'"),
        ("kind: proxy latency, peer: server", "'peer' 'server' is the target itself"),
        ("kind: netem loss, via: proxy, percent: 5", "has no Toxiproxy equivalent"),
    ],
)
def test_bad_parameters_exit_2_and_touch_nothing(pbed: ProxyBed, fault: str, problem: str) -> None:
    path = scenario(pbed, f"{fault}, target: server, at: 0s, duration: 5s", "bad")
    result = pbed.bed.cli("run", "--scenario", str(path), "--run-dir", str(run_dir(pbed, "bad")))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert problem in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert pbed.toxics() == []


def test_netem_delay_via_proxy_is_a_latency_toxic(pbed: ProxyBed) -> None:
    base = pbed.round_trip_ms()
    fault = "kind: netem delay, via: proxy, target: server, at: 0s, duration: 3s, time: 200, jitter: 0"
    proc, rdir = during(pbed, fault, "netem-via-proxy")
    added = pbed.round_trip_ms() - base
    line = finish(pbed, proc, rdir)
    assert 160 <= added <= 240, added
    assert line["params"]["via"] == "proxy"
    assert any("type=latency stream=downstream" in c for c in line["call"]), line

"""Toxiproxy: its HTTP API, the proxies' naming, and which proxies a fault's scope selects.

The toxiproxy role names each proxy `<client>--<server>` (`spark--kafka-2`, `producer--kafka-1`,
`spark--postgres`); a broker's replication proxy is `brokers--kafka-N` (every follower fetching from
kafka-N). The names are all the injector needs: it lists the proxies and picks by name, and the journal
keeps (proxy, toxic) pairs, so a restore after SIGKILL needs nothing else.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.chaos.outcome import FaultFailed

SEPARATOR = "--"
# The client side of a replication proxy: any broker fetching from the server side.
REPLICATION_CLIENT = "brokers"
STREAMS = ("upstream", "downstream")  # Toxiproxy's: client -> server, server -> client
TOXIC_PREFIX = "chaosbed_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
TIMEOUT_S = 5


@dataclass(frozen=True)
class ProxyPath:
    name: str
    client: str
    server: str


def parse_path(name: str) -> ProxyPath | None:
    client, sep, server = name.partition(SEPARATOR)
    return ProxyPath(name, client, server) if sep and client and server else None


def proxy_name(client: str, server: str) -> str:
    return f"{client}{SEPARATOR}{server}"


def select(
    names: list[str], target: str, paths: str, peer: str, is_broker: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """(proxy, side) for every proxy of `target`'s scope, side "in" (target is the server) or "out"."""
    chosen: list[tuple[str, str]] = []
    for path in sorted(filter(None, map(parse_path, names)), key=lambda p: p.name):
        replication = path.client == REPLICATION_CLIENT
        if paths in ("inbound", "all") and path.server == target:
            client_ok = (
                not peer or path.client == peer or (replication and is_broker(peer) and peer != target)
            )
            if client_ok:
                chosen.append((path.name, "in"))
        outbound = path.client == target or (replication and is_broker(target) and path.server != target)
        if paths in ("outbound", "all") and outbound and (not peer or path.server == peer):
            chosen.append((path.name, "out"))
    return chosen


def toxic_name(fault_id: str, stream: str) -> str:
    """Ours, per fault and stream; Toxiproxy puts it in a URL, so nothing but [A-Za-z0-9_.-]."""
    return f"{TOXIC_PREFIX}{_UNSAFE.sub('_', fault_id)}_{stream}"


class ToxiproxyApi:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise ApiError(exc.code, f"{method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FaultFailed(f"Toxiproxy API at {self.url} unreachable: {reason}") from None
        return json.loads(text) if text.strip() else None

    def proxies(self) -> dict[str, Any]:
        return dict(self._request("GET", "/proxies") or {})

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/proxies/{urllib.parse.quote(proxy)}/toxics") or [])

    def add_toxic(self, proxy: str, toxic: dict[str, Any]) -> None:
        self._request("POST", f"/proxies/{urllib.parse.quote(proxy)}/toxics", toxic)

    def delete_toxic(self, proxy: str, name: str) -> None:
        self._request("DELETE", f"/proxies/{urllib.parse.quote(proxy)}/toxics/{urllib.parse.quote(name)}")


class ApiError(FaultFailed):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def sweep_toxics(url: str, active_runs: set[str]) -> list[str]:
    """Safety net for a lost journal (`restore --all`): delete chaosbed's toxics on every proxy, except
    those of runs still in progress. No Toxiproxy answering: nothing to sweep."""
    api = ToxiproxyApi(url)
    keep = tuple(f"{TOXIC_PREFIX}{_UNSAFE.sub('_', run)}_" for run in active_runs)
    swept: list[str] = []
    try:
        proxies = api.proxies()
    except FaultFailed:
        return swept
    for proxy in sorted(proxies):
        for toxic in api.toxics(proxy):
            name = str(toxic.get("name", ""))
            if name.startswith(TOXIC_PREFIX) and not name.startswith(keep or ("\0",)):
                api.delete_toxic(proxy, name)
                swept.append(f"toxiproxy {proxy}: toxic {name}")
    return swept

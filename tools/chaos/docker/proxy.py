"""Docker unit for the proxy kinds: toxics added to the Toxiproxy proxies of the fault's scope, through
Toxiproxy's HTTP API (the toxiproxy role runs it and names each proxy after its path).

Also the `netem ... via: proxy` faults: a netem delay or rate on the target's egress becomes a latency or
bandwidth toxic on the target's paths, in the stream the target sends (downstream where it is the server,
upstream where it is the client).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from tools.chaos import toxiproxy
from tools.chaos.docker.engine import Engine
from tools.chaos.kinds import proxy as kinds
from tools.chaos.outcome import FaultFailed
from tools.chaos.plan import Step
from tools.chaos.schedule import Action
from tools.chaos.targets import Target
from tools.chaos.toxiproxy import ApiError, ToxiproxyApi

# Undo op, as written in the journal's intent records:
#   {"op": "toxics", "api": url, "toxics": [{"proxy": name, "toxic": name}, ...]}
#       delete each of our toxics that still exists (a proxy or toxic that is gone is done)
OP = "toxics"
# netem kind (via: proxy) -> the Toxiproxy toxic that does the same on a TCP path
NETEM_AS_TOXIC = {"netem delay": "latency", "netem rate": "bandwidth"}


def toxic_of(kind: str, params: Mapping[str, Any]) -> tuple[str, dict[str, int]]:
    """(Toxiproxy toxic type, attributes) of a proxy kind or of a netem kind with `via: proxy`."""
    if kind in kinds.TOXICS:
        return kinds.TOXICS[kind][0], kinds.attributes(kind, params)
    if kind == "netem delay":
        return "latency", {"latency": int(params["time"]), "jitter": int(params["jitter"])}
    return "bandwidth", {"rate": int(params["proxy_rate"])}


def toxics_to_add(
    action: Action, names: list[str], fault_id: str, is_broker: Any
) -> list[tuple[str, dict[str, Any]]]:
    """(proxy, toxic body) for every toxic the fault adds, in order; [] when its scope has no proxy."""
    params, kind = action.fault.params, action.kind
    toxic_type, attrs = toxic_of(kind, params)
    if kind in kinds.TOXICS:
        paths, peer, toxicity = params["paths"], params["peer"], float(params["toxicity"])
        per_side = dict.fromkeys(("in", "out"), kinds.streams(params["direction"]))
    else:  # netem via proxy: what the target sends, on every path of it
        paths, peer, toxicity = "all", "", 1.0
        per_side = {"in": ["downstream"], "out": ["upstream"]}
    out = []
    for proxy_name, side in toxiproxy.select(names, action.service, paths, peer, is_broker):
        for stream in per_side[side]:
            name = toxiproxy.toxic_name(fault_id, stream)
            body = {"name": name, "type": toxic_type, "stream": stream, "toxicity": toxicity}
            out.append((proxy_name, body | {"attributes": attrs}))
    return out


def _line(api: ToxiproxyApi, proxy: str, body: Mapping[str, Any]) -> str:
    attrs = " ".join(f"{k}={v}" for k, v in body["attributes"].items())
    return (
        f"POST {api.url}/proxies/{proxy}/toxics type={body['type']} stream={body['stream']} "
        f"toxicity={body['toxicity']:g} {attrs} name={body['name']}"
    )


def _delete_line(api_url: str, proxy: str, toxic: str) -> str:
    return f"DELETE {api_url}/proxies/{proxy}/toxics/{toxic}"


class ProxyUnit:
    kinds = tuple(kinds.TOXICS)
    undo_ops = (OP,)

    @staticmethod
    def _planned(engine: Engine, action: Action, fault_id: str) -> list[tuple[str, dict[str, Any]]]:
        api = ToxiproxyApi(engine.cfg.toxiproxy_url)
        names = engine.once(f"proxies@{api.url}", lambda: sorted(api.proxies()))
        planned = toxics_to_add(action, names, fault_id, engine.cfg.is_broker)
        if not planned:
            fault = action.fault.params
            scope = f"{fault.get('paths', 'all')} paths" + (
                f" to/from {fault['peer']}" if fault.get("peer") else ""
            )
            raise FaultFailed(
                f"no Toxiproxy proxy on {action.service}'s {scope} (proxies: {', '.join(names)})"
            )
        return planned

    def checks(self, engine: Engine, action: Action, target: Target, fault_id: str) -> list[Step]:
        def check(calls: list[str], stop: threading.Event) -> None:
            self._planned(engine, action, fault_id)  # the API answers and the scope has proxies

        return [Step((), check)]

    def undo_spec(self, engine: Engine, action: Action, target: Target, fault_id: str) -> dict[str, Any]:
        planned = self._planned(engine, action, fault_id)
        return {"op": OP, "api": engine.cfg.toxiproxy_url} | {
            "toxics": [{"proxy": proxy, "toxic": body["name"]} for proxy, body in planned]
        }

    def apply(
        self, engine: Engine, action: Action, target: Target, fault_id: str, spec: dict[str, Any]
    ) -> list[Step]:
        api = ToxiproxyApi(spec["api"])
        steps = []
        for proxy, body in self._planned(engine, action, fault_id):
            shows = _line(api, proxy, body)

            def do(
                calls: list[str], _stop: threading.Event, proxy: str = proxy, body: dict[str, Any] = body
            ) -> None:
                calls.append(_line(api, proxy, body))
                api.add_toxic(proxy, body)

            steps.append(Step((shows,), do))
        return steps

    def undo(self, engine: Engine, spec: dict[str, Any], fault_id: str) -> list[Step]:
        api = ToxiproxyApi(spec["api"])

        def do(calls: list[str], _stop: threading.Event) -> None:
            live: dict[str, set[str]] = {}
            for item in spec["toxics"]:
                proxy, toxic = item["proxy"], item["toxic"]
                if proxy not in live:
                    try:
                        live[proxy] = {t["name"] for t in api.toxics(proxy)}
                    except ApiError as exc:
                        if exc.status != 404:
                            raise
                        live[proxy] = set()
                if toxic not in live[proxy]:
                    calls.append(f"skip: no toxic {toxic} on {proxy} (never added, or removed already)")
                    continue
                calls.append(_delete_line(api.url, proxy, toxic))
                try:
                    api.delete_toxic(proxy, toxic)
                except ApiError as exc:
                    if exc.status != 404:
                        raise

        shows = tuple(_delete_line(api.url, i["proxy"], i["toxic"]) + " (if present)" for i in spec["toxics"])
        return [Step(shows, do)]


UNIT = ProxyUnit()

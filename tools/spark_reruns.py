"""What Spark ran again around a fault: tasks (an executor lost mid-batch: its tasks re-run on another
executor, the batch commits once) or whole batches (the driver restarted: the batch runs again from the
checkpoint, the sink absorbs it as a replay).

Read from the sink's own record of every execution of a batch (sink_batch_reads, written in the batch's
commit transaction): `execution` > 0 is a whole batch run again, `retried_tasks` counts the tasks of an
execution that Spark ran more than once (their successful attempt was not the first). The table has no
run id, so a run's executions are those committed in its time span; `tools experiment run` saves them with
the rest of what the report reads from the sink (tools/report/sink.py, SINK_DATA_FILE), so the report gives
the same answer after the sink is gone. Which executions count for a fault (the report's "Spark re-ran"
column) is Executions.until_recovery.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any

EXECUTIONS = """
SELECT (extract(epoch FROM committed_at) * 1000000)::bigint, query_id, batch_id, execution,
       coalesce(tasks, 0), coalesce(retried_tasks, 0)
  FROM sink_batch_reads
 WHERE committed_at >= to_timestamp(%(start_ms)s / 1000.0)
   AND committed_at < to_timestamp(%(end_ms)s / 1000.0)
 ORDER BY 1, 2, 3, 4
"""


@dataclass(frozen=True)
class Execution:
    """One committed execution of a micro-batch."""

    committed_us: int  # epoch microseconds of its commit
    query_id: str
    batch_id: int
    execution: int  # 0 = the batch's first, n = its n-th run again
    tasks: int
    retried_tasks: int


@dataclass(frozen=True)
class Reruns:
    executions: int  # batch executions committed in the window
    batches_rerun: int  # of which re-executions of an already committed batch (replays)
    tasks_rerun: int  # tasks Spark ran more than once, over those executions
    batches_with_task_reruns: int

    def describe(self) -> str:
        """One phrase for a report cell."""
        if not self.executions:
            return "no batch committed"
        parts = []
        if self.tasks_rerun:
            parts.append(f"{self.tasks_rerun} task(s) re-run in {self.batches_with_task_reruns} batch(es)")
        if self.batches_rerun:
            parts.append(f"{self.batches_rerun} whole batch(es) re-run")
        return ", ".join(parts) if parts else "nothing re-run"


@dataclass(frozen=True)
class Executions:
    """The batch executions committed in [start_ms, end_ms), the span they were read for."""

    found: list[Execution]
    start_ms: int
    end_ms: int

    def until_recovery(self, fault_start_ms: int, recovered_at_ms: int | None, run_end_ms: int) -> str | None:
        """What Spark re-ran from a fault's start to the end of the second it recovered in (recovery is
        found per second), or to the run's end when it did not recover; None: the span does not cover it."""
        if recovered_at_ms is None:
            end = min(run_end_ms, self.end_ms)
        else:
            end = recovered_at_ms // 1000 * 1000 + 1000
        if fault_start_ms < self.start_ms or end > self.end_ms:
            return None
        found = count_reruns(self.found, fault_start_ms, end).describe()
        return found if recovered_at_ms is not None else f"{found} (until the run's end)"

    def to_json(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "columns": ["committed_us", "query_id", "batch_id", "execution", "tasks", "retried_tasks"],
            "executions": [list(astuple(e)) for e in self.found],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Executions:
        """What to_json wrote (raises KeyError, TypeError or ValueError on anything else)."""
        found = [_execution(row) for row in data["executions"]]
        return cls(found, int(data["start_ms"]), int(data["end_ms"]))


def query_executions(conn: Any, start_ms: int, end_ms: int) -> list[Execution]:
    """The batch executions committed in [start_ms, end_ms), oldest first."""
    with conn.cursor() as cur:
        cur.execute(EXECUTIONS, {"start_ms": start_ms, "end_ms": end_ms})
        return [_execution(row) for row in cur]


def _execution(row: Any) -> Execution:
    """An execution from a row of EXECUTIONS' columns (a query's, or one saved by Executions.to_json)."""
    us, query_id, batch_id, execution, tasks, retried = row
    return Execution(int(us), str(query_id), int(batch_id), int(execution), int(tasks), int(retried))


def count_reruns(executions: list[Execution], start_ms: int, end_ms: int) -> Reruns:
    """What Spark re-ran among the executions committed in [start_ms, end_ms)."""
    inside = [e for e in executions if start_ms * 1000 <= e.committed_us < end_ms * 1000]
    return Reruns(
        len(inside),
        sum(1 for e in inside if e.execution > 0),
        sum(e.retried_tasks for e in inside),
        sum(1 for e in inside if e.retried_tasks > 0),
    )


def reruns(conn: Any, start_ms: int, end_ms: int) -> Reruns:
    """What Spark re-ran among the batch executions committed in [start_ms, end_ms)."""
    return count_reruns(query_executions(conn, start_ms, end_ms), start_ms, end_ms)

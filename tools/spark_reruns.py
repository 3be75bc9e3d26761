"""What Spark ran again around a fault: tasks (an executor lost mid-batch: its tasks re-run on another
executor, the batch commits once) or whole batches (the driver restarted: the batch runs again from the
checkpoint, the sink absorbs it as a replay).

Read from the sink's own record of every execution of a batch (sink_batch_reads, written in the batch's
commit transaction): `execution` > 0 is a whole batch run again, `retried_tasks` counts the tasks of an
execution that Spark ran more than once (their successful attempt was not the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RERUNS = """
SELECT count(*),
       count(*) FILTER (WHERE execution > 0),
       coalesce(sum(retried_tasks), 0),
       count(*) FILTER (WHERE retried_tasks > 0),
       min(committed_at) FILTER (WHERE execution > 0 OR retried_tasks > 0)
  FROM sink_batch_reads
 WHERE committed_at >= to_timestamp(%(start_ms)s / 1000.0)
   AND committed_at < to_timestamp(%(end_ms)s / 1000.0)
"""


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


def reruns(conn: Any, start_ms: int, end_ms: int) -> Reruns:
    """What Spark re-ran among the batch executions committed in [start_ms, end_ms)."""
    with conn.cursor() as cur:
        cur.execute(RERUNS, {"start_ms": start_ms, "end_ms": end_ms})
        n, replays, tasks, batches, _first = cur.fetchone()
    return Reruns(int(n), int(replays), int(tasks), int(batches))

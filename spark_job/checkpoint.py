"""The Kafka offsets a micro-batch reads, from the query's checkpoint (its offsets log).

Spark writes `offsets/<batch>` before running a batch (the end offsets it planned, exclusive); a batch
starts where the previous one ended, and batch 0 where the source's initial offsets (`sources/0/0`)
say. The sink records both with the batch (sink_batch_reads), so the checker can tell which ids a
committed batch claimed to read, and the gaps and overlaps between batches, for every sink mode and
also after a checkpoint was dropped (the unsafe-offsets profile starts a new query id).
"""

from __future__ import annotations

import json
import os

Offsets = dict[str, int]  # partition (as text, as JSON keys are) -> offset


def parse_offset_file(text: str) -> Offsets | None:
    """The Kafka source offsets in an offsets-log or initial-offsets file: its last JSON line,
    {topic: {partition: offset}}, flattened (the job reads one topic)."""
    lines = [line for line in text.lstrip("\x00").splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].startswith("v"):
        return None
    try:
        data = json.loads(lines[-1])
    except ValueError:
        return None
    out: Offsets = {}
    if not isinstance(data, dict):
        return None
    for partitions in data.values():
        if isinstance(partitions, dict):
            out.update({str(p): int(o) for p, o in partitions.items()})
    return out


def _read(path: str) -> Offsets | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return parse_offset_file(fh.read())
    except OSError:
        return None


def batch_offsets(checkpoint: str, batch_id: int) -> tuple[Offsets | None, Offsets | None]:
    """(start, end) offsets of the batch per partition; None where the checkpoint does not say
    (not a local path, or the file is gone)."""
    if "://" in checkpoint and not checkpoint.startswith("file:"):
        return None, None
    root = checkpoint.removeprefix("file://").removeprefix("file:")
    end = _read(os.path.join(root, "offsets", str(batch_id)))
    if batch_id == 0:
        start = _read(os.path.join(root, "sources", "0", "0"))
    else:
        start = _read(os.path.join(root, "offsets", str(batch_id - 1)))
    return start, end

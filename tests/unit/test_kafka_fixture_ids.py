"""The test broker's KRaft cluster ids: StorageTool must never read one as an option."""

from __future__ import annotations

import base64

from fixtures.kafka import random_cluster_id


def test_cluster_ids_never_start_with_a_dash() -> None:
    ids = [random_cluster_id() for _ in range(2000)]  # a plain random id starts with "-" 1 time in 64
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)

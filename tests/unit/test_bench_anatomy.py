"""benchmarks/anatomy.py: per-partition acknowledgement delays of the ids produced in a fault's window."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import anatomy  # noqa: E402

# A ledger as `tools produce` writes it: reservations "R <ms> <lo> <hi>",
# acknowledgements "A <ms> <lo> <hi> <partition> <offset>".
LEDGER = """chaosbed-ledger 1 run-x
S 1000 1 100
R 1000 0 499
R 1500 500 999
R 9000 1000 1499
A 1100 0 99 0 10
A 4200 100 199 1 20
A 1700 500 599 0 11
A 9100 1000 1099 2 30
"""


def test_ack_delays_cover_only_ids_reserved_in_the_window(tmp_path: Path) -> None:
    (tmp_path / "ledger.log").write_text(LEDGER)
    delays = anatomy.ack_delays(tmp_path, start_ms=1200, window_ms=1000)
    # Ids reserved from 500 ms before the start up to the window's end: the 1000 and 1500 reservations.
    assert delays == {0: (200, 500), 1: (3200, 3000)}
    # Partition 2's ids were reserved at 9000, outside the window.
    assert 2 not in delays


def test_reserved_at_finds_the_reservation_of_an_id() -> None:
    reserved = [(1000, 0, 499), (1500, 500, 999)]
    assert anatomy.reserved_at(reserved, 499) == 1000
    assert anatomy.reserved_at(reserved, 500) == 1500
    assert anatomy.reserved_at(reserved, 1000) is None

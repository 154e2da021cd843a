"""The disk spool on its own: order across restarts, bounds, crash leftovers."""

from __future__ import annotations

from pathlib import Path

from sitevis_collector.export.spool import Batch, Spool


def batch(tag: bytes, size: int = 100, points: int = 1) -> Batch:
    data = tag.ljust(size, b".")
    return Batch(points=points, size=len(data), data=data)


def test_order_survives_a_new_spool_object(tmp_path: Path):
    first = Spool(tmp_path, 10_000)
    for tag in (b"a", b"b", b"c"):
        assert first.append(batch(tag)) == []
    first.remove(first.head())
    second = Spool(tmp_path, 10_000)
    assert second.append(batch(b"d", points=7)) == []
    assert [second.read(b)[:1] for b in second.items] == [b"b", b"c", b"d"]
    assert [b.points for b in second.items] == [1, 1, 7]
    assert second.bytes == 300


def test_spooled_batches_leave_memory(tmp_path: Path):
    spool = Spool(tmp_path, 10_000)
    b = batch(b"x")
    spool.append(b)
    assert b.data is None and b.path is not None and b.path.read_bytes().startswith(b"x")


def test_full_spool_drops_the_oldest_first(tmp_path: Path):
    spool = Spool(tmp_path, 350)
    dropped = []
    for tag in (b"a", b"b", b"c", b"d", b"e"):
        dropped += spool.append(batch(tag))
    assert [d.path.name.split("-")[0][-1] for d in dropped] == ["0", "1"]
    assert [spool.read(b)[:1] for b in spool.items] == [b"c", b"d", b"e"]
    assert spool.bytes == 300 <= spool.max_bytes
    assert len(list(tmp_path.iterdir())) == 3


def test_a_batch_larger_than_the_spool_is_itself_dropped(tmp_path: Path):
    spool = Spool(tmp_path, 150)
    spool.append(batch(b"a"))
    huge = batch(b"h", size=200)
    assert spool.append(huge) == [huge]
    assert [spool.read(b)[:1] for b in spool.items] == [b"a"]


def test_crash_leftovers_are_removed_and_strangers_ignored(tmp_path: Path):
    Spool(tmp_path, 10_000).append(batch(b"a"))
    (tmp_path / ".0000000000000001.tmp").write_bytes(b"half a write")
    (tmp_path / "README").write_text("not ours")
    spool = Spool(tmp_path, 10_000)
    assert len(spool) == 1
    assert not (tmp_path / ".0000000000000001.tmp").exists()
    assert (tmp_path / "README").exists()
    spool.append(batch(b"b"))
    assert [p.name for p in sorted(tmp_path.glob("*.lp.gz"))] == [
        "0000000000000000-1.lp.gz", "0000000000000001-1.lp.gz"]

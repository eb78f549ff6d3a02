"""The journal thread under many concurrent writes: every future is settled once its bytes are in
the file, in write order, with batches handed off while earlier ones are still being written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from voicefn.server.journal import JournalWriter


async def test_concurrent_writes_all_land_in_order_and_settle(tmp_path: Path) -> None:
    writer = JournalWriter(asyncio.get_running_loop())
    path = tmp_path / "a.jsonl"
    order: list[bytes] = []

    async def task(i: int) -> None:
        for j in range(40):
            line = f"{i}:{j}\n".encode()
            order.append(line)
            future = writer.write(path, line)
            if j % 3 == 0:
                await future
                assert line in path.read_bytes().splitlines(keepends=True)  # done means written
            else:
                await asyncio.sleep(0)

    await asyncio.gather(*(task(i) for i in range(50)))
    await writer.write(path, b"last\n")
    assert path.read_bytes() == b"".join(order) + b"last\n"
    writer.hand_off()
    await asyncio.to_thread(writer.stop)


async def test_a_failed_write_fails_its_future_and_later_writes_go_on(tmp_path: Path) -> None:
    writer = JournalWriter(asyncio.get_running_loop())
    bad = writer.write(tmp_path / "missing" / "x.jsonl", b"x\n")
    good = writer.write(tmp_path / "b.jsonl", b"y\n")
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], FileNotFoundError)
    assert results[1] is None
    await writer.write(tmp_path / "b.jsonl", b"z\n")
    assert (tmp_path / "b.jsonl").read_bytes() == b"y\nz\n"
    writer.hand_off()
    await asyncio.to_thread(writer.stop)


async def test_drop_comes_after_the_writes_made_before_it(tmp_path: Path) -> None:
    writer = JournalWriter(asyncio.get_running_loop())
    path = tmp_path / "c.jsonl"
    futures = [writer.write(path, b"%d\n" % i) for i in range(100)]
    writer.drop(path)
    await asyncio.gather(*futures)
    after = writer.write(tmp_path / "d.jsonl", b"d\n")
    await after  # handed off after the drop: the drop has run
    assert not path.exists()
    writer.hand_off()
    await asyncio.to_thread(writer.stop)

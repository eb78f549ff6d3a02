"""voicefn.outbound.Deadlines: asyncio.timeout's behaviour with timers shared between requests."""

from __future__ import annotations

import asyncio

import pytest

from voicefn.outbound import Deadlines


async def test_a_limit_that_passes_raises_timeout_error_and_the_task_goes_on() -> None:
    deadlines = Deadlines()
    with pytest.raises(TimeoutError), deadlines.limit(0.02):
        await asyncio.Event().wait()  # never set: only the limit ends this
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the cancel was ours, and undone
    await asyncio.sleep(0)  # the task is not cancelled any more
    assert not deadlines._buckets  # the window's timer fired and is gone


async def test_a_block_that_ends_in_time_is_never_cancelled_later() -> None:
    deadlines = Deadlines()
    with deadlines.limit(0.02) as limit:
        await asyncio.sleep(0)
    assert not limit.expired
    # Well past the deadline: no stray cancellation reaches the task.
    await asyncio.sleep(0.1)
    with deadlines.limit(5):
        await asyncio.sleep(0)


async def test_concurrent_limits_in_one_window_share_one_timer() -> None:
    deadlines = Deadlines(resolution=60.0)  # every deadline of this test in one window
    gate, all_in = asyncio.Event(), asyncio.Event()
    entered = 0

    async def request() -> None:
        nonlocal entered
        with deadlines.limit(30):
            entered += 1
            if entered == 50:
                all_in.set()
            await gate.wait()

    tasks = [asyncio.create_task(request()) for _ in range(50)]
    await all_in.wait()
    assert len(deadlines._buckets) == 1
    (bucket,) = deadlines._buckets.values()
    assert len(bucket) == 50
    gate.set()
    await asyncio.gather(*tasks)
    assert not bucket  # every request left its window


async def test_every_limit_of_a_window_expires_and_only_those() -> None:
    deadlines = Deadlines()
    outcomes: list[str] = []

    async def request(seconds: float, work: float) -> None:
        try:
            with deadlines.limit(seconds):
                await asyncio.sleep(work)
            outcomes.append("done")
        except TimeoutError:
            outcomes.append("timeout")

    await asyncio.gather(
        *(request(0.05, 10) for _ in range(20)), *(request(10, 0) for _ in range(20))
    )
    assert outcomes.count("timeout") == 20
    assert outcomes.count("done") == 20


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    started = asyncio.Event()

    async def request() -> None:
        with deadlines.limit(30):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(request())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(deadlines._buckets.values())  # it left its window on the way out


async def test_an_inner_limit_expires_inside_an_outer_one() -> None:
    deadlines = Deadlines()
    with deadlines.limit(30) as outer:
        with pytest.raises(TimeoutError), deadlines.limit(0.02):
            await asyncio.Event().wait()
        await asyncio.sleep(0)  # the outer block goes on, uncancelled
    assert not outer.expired


async def test_a_limit_is_entered_once() -> None:
    limit = Deadlines().limit(1)
    with limit, pytest.raises(RuntimeError, match="once"), limit:
        pass  # pragma: no cover


def test_outside_a_running_loop_it_refuses() -> None:
    with pytest.raises(RuntimeError), Deadlines().limit(1):
        pass  # pragma: no cover

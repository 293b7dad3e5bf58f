"""The generation queue: one turn at a time, in arrival order, a bounded number waiting."""

from __future__ import annotations

import asyncio

import pytest

from runtime.serve.queue import GenerationQueue, QueueFull


def test_turns_are_taken_in_arrival_order_and_a_full_queue_refuses_at_once() -> None:
    async def scenario() -> tuple[list[int], int]:
        queue = GenerationQueue(max_waiting=3)
        order: list[int] = []
        release = asyncio.Event()

        async def request(n: int) -> None:
            async with queue.turn():
                order.append(n)
                if n == 0:
                    await release.wait()

        tasks = []
        for n in range(4):  # one running, three waiting
            tasks.append(asyncio.ensure_future(request(n)))
            await asyncio.sleep(0)
        waiting = queue.waiting
        with pytest.raises(QueueFull) as full:
            async with queue.turn():
                pass
        assert full.value.waiting == 3
        release.set()
        await asyncio.gather(*tasks)
        assert queue.running == 0 and queue.waiting == 0
        return order, waiting

    order, waiting = asyncio.run(scenario())
    assert order == [0, 1, 2, 3]
    assert waiting == 3


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    async def scenario() -> int:
        queue = GenerationQueue(max_waiting=1)
        async with queue.turn():
            waiter = asyncio.ensure_future(queue.turn().__aenter__())
            await asyncio.sleep(0)
            assert queue.waiting == 1
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        return queue.waiting

    assert asyncio.run(scenario()) == 0

"""Once-only work hears only of this node's changes: a store shared by several nodes republishes the others'
changes on the hub with `remote=True`, which local-only listeners (outputs, relay, webhooks) never see."""

from __future__ import annotations

from mailnest.events import AllDeleted, Event, Hub


def test_local_only_listeners_do_not_hear_other_nodes_changes() -> None:
    hub = Hub()
    everything: list[Event] = []
    local: list[Event] = []
    hub.add_listener(everything.append)
    hub.add_listener(local.append, local_only=True)
    sub = hub.subscribe()
    mine, theirs = AllDeleted(), AllDeleted()
    hub.publish(mine)
    hub.publish(theirs, remote=True)
    assert [id(e) for e in everything] == [id(mine), id(theirs)]
    assert [id(e) for e in local] == [id(mine)]
    assert [id(sub.get_nowait()), id(sub.get_nowait())] == [id(mine), id(theirs)]  # front doors see both
    hub.remove_listener(local.append)
    hub.publish(AllDeleted())
    assert len(local) == 1 and len(everything) == 3


def test_get_wakes_for_an_event_offered_before_its_first_turn() -> None:
    """An event published in the same loop turn as `get()` started is returned at once, not after the timeout
    (wait_for ran the wait as a task that started a turn later, so the event found no waiter to wake)."""
    import asyncio
    import time

    async def scenario() -> tuple[Event | None, float]:
        hub = Hub()
        sub = hub.subscribe()
        loop = asyncio.get_running_loop()
        event = AllDeleted()
        loop.call_soon(hub.publish, event)  # runs before a task created by get() would start
        started = time.monotonic()
        got = await sub.get(timeout=2)
        return got, time.monotonic() - started

    got, waited = asyncio.run(scenario())
    assert got == AllDeleted() and waited < 1.0, waited

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

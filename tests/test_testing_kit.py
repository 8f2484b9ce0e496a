"""ctid.testing.kit.closing_all: what a factory fixture keeps is closed when its block ends, in order."""

from __future__ import annotations

from ctid.testing.kit import closing_all


class Thing:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def aclose(self) -> None:
        self.log.append(self.name)


async def test_every_kept_thing_is_closed_at_the_end_in_the_order_made() -> None:
    log: list[str] = []
    async with closing_all() as keep:
        first = Thing("a", log)
        assert keep(first) is first
        keep(Thing("b", log))
        Thing("not kept", log)
        assert log == []
    assert log == ["a", "b"]
    async with closing_all():
        pass
    assert log == ["a", "b"]

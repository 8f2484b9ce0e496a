"""Smoke: the adapter reaches the fake through msal + https."""


async def test_lookup_smoke(adapter, world, fake):
    matches = await adapter.lookup("+74951234567")
    assert [m.name for m in matches] == ["Jane Doe"]

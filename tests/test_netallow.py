"""ctid.netallow.address_allowed: a webhook's source address against an instance's allowed networks."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from ctid.netallow import address_allowed

NETS = [ipaddress.ip_network("193.201.230.0/24"), ipaddress.ip_network("2001:db8::/32")]


def test_an_empty_list_allows_every_source_even_none() -> None:
    assert address_allowed("10.0.0.1", []) and address_allowed(None, []) and address_allowed("junk", [])


def test_addresses_in_and_out_of_the_networks() -> None:
    assert address_allowed("193.201.230.155", NETS)
    assert address_allowed("[2001:db8::1]", NETS) and address_allowed("2001:db8::1", NETS)
    assert not address_allowed("193.201.231.1", NETS)
    assert not address_allowed("::1", NETS)


def test_a_missing_or_unreadable_address_is_refused_when_a_list_is_set() -> None:
    for remote in (None, "", "localhost", "193.201.230.155:443", "[]"):
        assert not address_allowed(remote, NETS)


@given(st.ip_addresses())
def test_every_address_is_allowed_exactly_when_a_network_holds_it(address) -> None:
    expected = any(address.version == n.version and address in n for n in NETS)
    assert address_allowed(str(address), NETS) is expected
    assert address_allowed(f"[{address}]", NETS) is expected


@given(st.one_of(st.none(), st.text(max_size=60)))
def test_any_text_gets_a_yes_or_no_never_an_exception(remote) -> None:
    assert address_allowed(remote, NETS) in (True, False)
    assert address_allowed(remote, []) is True

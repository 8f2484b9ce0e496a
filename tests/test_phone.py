"""Phone number normalization: the shapes PBXs send, and garbage that must not crash."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.phone import normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("89101234567", "+79101234567"),  # Russian trunk prefix 8
        ("79101234567", "+79101234567"),  # E.164 digits without "+" (MegaFon)
        ("+79101234567", "+79101234567"),
        ("8 (910) 123-45-67", "+79101234567"),
        ("+7 910 123-45-67", "+79101234567"),
        ("9101234567", "+79101234567"),  # national number without prefix
        ("84951234567", "+74951234567"),
        ("71117772211", "+71117772211"),  # not valid in the metadata, but possible: kept as E.164
        ("4915112345678", "+4915112345678"),  # foreign E.164 digits without "+"
        ("+1 650 253 0000", "+16502530000"),
        ("0049 151 12345678", "+4915112345678"),  # "00" international prefix
        ("810 49 151 12345678", "+4915112345678"),  # Russian international prefix
        ("101", "101"),  # internal extension
        ("704", "704"),
        ("123456", "123456"),
        ("12-34", "1234"),
        ("12345678", "12345678"),  # garbage: digits kept
        ("0012345678", "0012345678"),
        ("+12345678", "+12345678"),
        ("1234567890123456789", "1234567890123456789"),
        ("anonymous", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0518012216@193.43.148.35", "0518012216"),  # IP Office SMDR caller on a SIP trunk (avaya.md §1)
        ("0518012216", "0518012216"),  # a leading 0 is no Russian trunk prefix: not +70518012216
        ("sip:+79161234567@pbx.example.com", "+79161234567"),
        ("SIP:89161234567@10.0.0.1:5060", "+79161234567"),
        ("tel:+4915112345678", "+4915112345678"),
        ("101@10.0.0.1", "101"),  # an extension, not "10110001"
        ("anonymous@10.0.0.1", None),  # no number before "@": the host is no number
    ],
)
def test_the_user_part_of_a_sip_address_is_the_number(raw, expected):
    assert normalize(raw) == expected


@settings(max_examples=200, deadline=None)
@given(number=st.from_regex(r"\+?[0-9][0-9 ()-]{0,16}", fullmatch=True),
       host=st.from_regex(r"[0-9a-z.:-]{1,20}", fullmatch=True), scheme=st.sampled_from(["", "sip:", "tel:"]))
def test_a_host_never_changes_the_number(number, host, scheme):
    assert normalize(f"{scheme}{number}@{host}") == normalize(number)


def test_region_decides_national_numbers():
    assert normalize("030 1234567", "DE") == "+49301234567"
    assert normalize("89101234567", "RU") == "+79101234567"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="+0123456789 -()x#*abc", max_size=25))
def test_normalize_never_crashes_and_is_idempotent(raw):
    once = normalize(raw)
    if once is None:
        assert not any(ch.isdigit() for ch in raw)
    else:
        assert normalize(once) == once


def test_a_reading_that_does_not_read_back_as_itself_is_not_used():
    assert normalize("200000000000") == "200000000000"  # "+20 0…": the national prefix would eat a 0
    assert normalize(normalize("200000000000")) == "200000000000"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("³", None),  # a superscript is a digit to str.isdigit, but no decimal digit
        ("10¹", "10"),
        ("+7 916 123-45-67²", "+79161234567"),  # a footnote mark is not part of the number
        ("+⁷⁹¹⁶¹²³⁴⁵⁶⁷", None),
        ("١٠١", "101"),  # Arabic-Indic digits are digits: the result is ASCII like every other
        ("٧٩١٦١٢٣٤٥٦٧", "+79161234567"),
        ("７９１６１２３４５６７", "+79161234567"),  # fullwidth
        ("1234567890١٢٣٤٥٦٧٨٩٠", "12345678901234567890"),
    ],
)
def test_only_decimal_digits_count_and_the_result_is_ascii(raw, expected):
    assert normalize(raw) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=25))
def test_any_text_normalizes_to_ascii_digits_or_none(raw):
    once = normalize(raw)
    if once is None:  # no digit in the number (a SIP address's host is no part of it)
        assert not any(ch.isdecimal() for ch in re.sub(r"^\s*(?:sips?|tel):", "", raw, flags=re.I).partition("@")[0])
    else:
        assert once.isascii() and once.lstrip("+").isdigit(), once
        assert normalize(once) == once

"""Phone number variants for exact-match lookups: Dynamics phone columns are free text, never normalized."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberFormat


def variants(phone: str, region: str) -> list[str]:
    """The spellings of ``phone`` a CRM user may have typed, most likely first.

    E.164 (``+74951234567``), its digits (``74951234567``), national digits with the trunk prefix
    (``84951234567``), the national significant number (``4951234567``) and the two formatted
    forms phonenumbers produces (``+7 495 123-45-67``, ``8 (495) 123-45-67``). Exact values only:
    leading-wildcard filters are throttled and time out in Dynamics.
    """
    raw = phone.strip()
    found: list[str] = []

    def add(value: str) -> None:
        if value and value not in found:
            found.append(value)

    try:
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        add(raw)
        add(re.sub(r"\D", "", raw))
        return found
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    add(e164)
    add(e164.lstrip("+"))
    add(re.sub(r"\D", "", national))
    add(phonenumbers.national_significant_number(number))
    add(phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL))
    add(national)
    return found


def e164(phone: str, region: str) -> str:
    """``phone`` in E.164 when it parses, else as given (stripped)."""
    try:
        number = phonenumbers.parse(phone.strip(), region.upper())
    except phonenumbers.NumberParseException:
        return phone.strip()
    if not phonenumbers.is_possible_number(number):
        return phone.strip()
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)

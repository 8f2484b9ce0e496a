"""Phone number normalization: every number ctid stores or compares goes through :func:`normalize`.

Numbers reach ctid in many shapes: ``89101234567`` (Russian trunk prefix), ``79101234567`` (E.164
digits without ``+``, as MegaFon sends them), ``+7 (910) 123-45-67``, ``0049…`` / ``810 49…``
(international prefixes), short internal extensions (``101``), and plain garbage. :func:`normalize`
turns the ones that are phone numbers into E.164 with a leading ``+`` (using the ``phonenumbers``
library, Google's libphonenumber metadata), keeps extensions as they are, and never raises.

This is the one normalisation of ctid and of its plugins: connectors normalise the numbers they put
in events with it and CRM adapters the numbers they look up, so the same number is the same string
everywhere (a plugin must not carry its own). Results are cached (parsing costs ~30 µs a number and
every leg of a call repeats its numbers); inputs longer than any phone number are not cached.
:func:`variants` gives the spellings of a number a person may have typed into a CRM's free-text
phone field, for exact-match lookups.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat

#: Digit strings of at most this length (without ``+``) are internal extensions, kept as they are.
MAX_EXTENSION_DIGITS = 6
#: Inputs longer than this are normalised without the cache (no phone number is this long).
MAX_CACHED_LENGTH = 64


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _possible(number: phonenumbers.PhoneNumber) -> bool:
    """Possible as a full number (not merely as a local number without its area code)."""
    return phonenumbers.is_possible_number_with_reason(number) == phonenumbers.ValidationResult.IS_POSSIBLE


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize(number: str | None, region: str = "RU") -> str | None:
    """The canonical form of ``number``: E.164 (``+79101234567``), an extension, or its digits.

    - ``None``, empty strings and strings without any digit (``"anonymous"``) give ``None``.
    - Up to :data:`MAX_EXTENSION_DIGITS` digits without ``+``: an internal extension, returned as
      digits (``"101"``).
    - Otherwise the number is read as a national number of ``region`` (so ``8XXXXXXXXXX`` and
      ``7XXXXXXXXXX`` both become ``+7XXXXXXXXXX`` in Russia) and as an international number
      (``4915112345678`` → ``+4915112345678``); a *valid* reading wins over a merely *possible* one,
      the national reading wins a tie. ``00`` is accepted as an international prefix.
    - A national reading kept with a leading 0 that is not the region's trunk prefix (``0518012216``
      in Russia, a foreign number as dialled) is used only when valid.
    - ``user@host`` (SIP, ``sip:`` / ``tel:`` URIs) is the number ``user``: ``0518012216@193.43.148.35``
      is ``0518012216``, never the host's digits appended; ``anonymous@host`` is ``None``.
    - Anything else keeps its digits (with the ``+`` if it had one), so nothing is lost.
    - Digits are decimal digits of any script (``"١٠١"`` is ``"101"``), always returned in ASCII;
      superscripts and other digit-like signs are not digits.
    """
    if number is None:
        return None
    text = str(number)
    if len(text) > MAX_CACHED_LENGTH:  # not a phone number: kept out of the cache
        return _normalize(text, region)
    return _normalize_cached(text, region)


#: A SIP/tel URI's scheme (``sip:0518012216@host``): not part of the number.
_SCHEME = re.compile(r"^\s*(?:sips?|tel):", re.IGNORECASE)


def _user_part(text: str) -> str:
    """The number of a SIP-style ``user@host`` (IP Office SMDR's caller on SIP trunks, avaya.md §1):
    the host's digits are no part of it (``anonymous@10.0.0.1`` has no number)."""
    return _SCHEME.sub("", text, count=1).partition("@")[0]


def _normalize(text: str, region: str) -> str | None:
    text = _user_part(text).strip()
    # Decimal digits of any script, as ASCII: str.isdigit() also holds for superscripts ("³"), which are no
    # digit of a number (int() refuses them), and a non-ASCII result would reach the PBX as it is.
    digits = "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())
    if not digits:
        return None
    plus = text.startswith("+")
    raw = "+" + digits if plus else digits
    if not plus and digits.startswith("00") and len(digits) > MAX_EXTENSION_DIGITS + 2:
        plus, digits = True, digits[2:]
    if not plus and len(digits) <= MAX_EXTENSION_DIGITS:
        return digits
    international = _parse("+" + digits, None)
    readings = [international] if plus else [_parse(digits, region), international]
    parsed = [reading for reading in readings if reading is not None]
    for check in (phonenumbers.is_valid_number, _possible):
        for reading in parsed:
            # A national number kept with a leading 0 that is no trunk prefix of ``region`` (``0518012216``
            # in Russia) is a number of somewhere else dialled as it was: no E.164 guess unless valid.
            if check is _possible and reading.italian_leading_zero:
                continue
            if check(reading):
                formatted = _e164(reading)
                if _stable(formatted, "+" + digits, international):
                    return formatted
    return raw


def _stable(formatted: str, international_text: str, international: phonenumbers.PhoneNumber | None) -> bool:
    """Whether an E.164 result reads back as itself (some odd inputs lose a digit to a national
    prefix on each reading); normalizing must be idempotent, as numbers are normalized twice.
    ``international`` is the reading of ``international_text`` already made: when the result is that
    text (the usual case), its reading back is that reading, not parsed a second time."""
    again = international if formatted == international_text else _parse(formatted, None)
    return again is not None and _e164(again) == formatted


# The switchboard re-reads a call's numbers on every event, connectors every leg's: bounded in
# entries, and in size by MAX_CACHED_LENGTH.
_normalize_cached = lru_cache(maxsize=65_536)(_normalize)


def variants(phone: str, region: str = "RU") -> list[str]:
    """The spellings of ``phone`` a CRM user may have typed, most likely first, for exact lookups.

    E.164 (``+74951234567``), its digits (``74951234567``), national digits with the trunk prefix
    (``84951234567``), the national significant number (``4951234567``) and the two formatted
    forms libphonenumber produces (``+7 495 123-45-67``, ``8 (495) 123-45-67``). A string that is
    not a possible number gives itself and its digits. Exact values only: CRMs throttle or time
    out on leading-wildcard filters.
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

"""What the fake Dynamics knows about tables: entity sets, columns, lookups, state/status pairs, and $filter.

The error codes below are Dynamics' where the reference documents them; the others are marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Documented codes (reference §1.1, §1.4, §1.11).
RESOURCE_NOT_FOUND = "0x8006088a"  # "Resource not found for the segment"
LEADING_WILDCARD = "0x80048573"  # LeadingWildcardCauseTimeout
THROTTLED_REQUESTS = "0x80072322"  # number of requests exceeded
VALIDATION_LENGTH = "0x80044331"  # "A validation error occurred. The length of the ... attribute" (§1.10)
# Codes whose exact value the reference does not give: stable stand-ins, never keyed on by the client.
OBJECT_DOES_NOT_EXIST = "0x80040217"
BAD_PAYLOAD = "0x80048d19"
BAD_QUERY = "0x80060888"
INVALID_STATE = "0x80040203"
CLOSED_ACTIVITY = "0x80040203"
UNEXPECTED = "0x80040216"


class ODataError(Exception):
    """An error answer: HTTP status, Dynamics code, message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class Entity:
    logical: str
    entity_set: str
    key: str
    name_column: str | None
    columns: set[str]
    #: navigation property usable with @odata.bind -> (lookup column, allowed target entity sets)
    navigation: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: statecode -> valid statuscodes; empty for tables without a state model here
    states: dict[int, set[int]] = field(default_factory=dict)
    default_status: dict[int, int] = field(default_factory=dict)
    activity: bool = False
    #: String column -> MaxLength; other column -> its Edm type ("Boolean", "DateTime", "Integer")
    max_lengths: dict[str, int] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def check_value(self, column: str, value: Any) -> None:
        """Refuse a value Dynamics would refuse: wrong JSON type, or text over MaxLength."""
        if value is None:
            return
        kind = self.types.get(column, "String")
        if kind == "Boolean" and not isinstance(value, bool):
            raise _conversion(value, "Edm.Boolean")
        if kind == "Integer" and (isinstance(value, bool) or not isinstance(value, int)):
            raise _conversion(value, "Edm.Int32")
        if kind == "Money" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise _conversion(value, "Edm.Decimal")
        if kind == "DateTime" and not (isinstance(value, str) and _DATETIME.match(value) and _parses(value)):
            raise _conversion(value, "Edm.DateTimeOffset")
        if kind == "String":
            if not isinstance(value, str):
                raise _conversion(value, "Edm.String")
            limit = self.max_lengths.get(column)
            if limit is not None and len(value) > limit:
                raise ODataError(
                    400, VALIDATION_LENGTH,
                    f"A validation error occurred. The length of the '{column}' attribute of the '{self.logical}' "
                    f"entity exceeded the maximum allowed length of '{limit}'.",
                )

    def lookup_columns(self) -> set[str]:
        return {f"_{column}_value" for column, _ in self.navigation.values()}

    def readable(self) -> set[str]:
        return self.columns | self.lookup_columns() | {self.key} | SYSTEM_COLUMNS


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _conversion(value: Any, edm: str) -> ODataError:
    # The Web API's answer to a JSON value of the wrong type; its code is not documented (stand-in).
    return ODataError(
        400, BAD_PAYLOAD,
        "An error occurred while validating input parameters: Microsoft.OData.ODataException: "
        f"Cannot convert the literal '{value}' to the expected type '{edm}'.",
    )


PHONES = {"telephone1", "telephone2", "telephone3"}
#: Read-only columns Dynamics keeps on every row (UTC, ``2026-03-02T09:30:00Z``).
SYSTEM_COLUMNS = {"createdon", "modifiedon"}
#: MaxLength of the string columns the fake knows. Documented (reference §1.4, §1.7): phone columns
#: 50, task subject 200 and description 2000. The others follow the entity reference pages [guess].
PHONE_LENGTHS = {"telephone1": 50, "telephone2": 50, "telephone3": 50, "mobilephone": 50}
ACTIVITY_LENGTHS = {"subject": 200, "description": 2000, "category": 250, "subcategory": 250}
ACTIVITY_TYPES = {"actualstart": "DateTime", "actualend": "DateTime", "scheduledstart": "DateTime",
                  "scheduledend": "DateTime", "prioritycode": "Integer", "actualdurationminutes": "Integer",
                  "statecode": "Integer", "statuscode": "Integer"}
OWNER = {"ownerid": ("ownerid", ("systemusers", "teams"))}


def _regarding(activity: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {
        f"regardingobjectid_{logical}_{activity}": ("regardingobjectid", (entity_set,))
        for logical, entity_set in (("contact", "contacts"), ("account", "accounts"), ("lead", "leads"))
    }


def build_entities(extra_columns: dict[str, set[str]] | None = None) -> dict[str, Entity]:
    entities = [
        Entity("contact", "contacts", "contactid", "fullname",
               {"fullname", "firstname", "lastname", "mobilephone", "emailaddress1", *PHONES},
               {"parentcustomerid_account": ("parentcustomerid", ("accounts",)), **OWNER},
               max_lengths={**PHONE_LENGTHS, "fullname": 160, "firstname": 50, "lastname": 50, "emailaddress1": 100}),
        Entity("account", "accounts", "accountid", "name", {"name", "emailaddress1", *PHONES}, dict(OWNER),
               max_lengths={**PHONE_LENGTHS, "name": 160, "emailaddress1": 100}),
        Entity("lead", "leads", "leadid", "fullname",
               {"fullname", "firstname", "lastname", "companyname", "mobilephone", "statecode", "statuscode",
                *PHONES}, dict(OWNER),
               states={0: {1, 2}, 1: {3}, 2: {4, 5, 6, 7}}, default_status={0: 1, 1: 3, 2: 4},
               max_lengths={**PHONE_LENGTHS, "fullname": 160, "firstname": 50, "lastname": 50, "companyname": 100},
               types={"statecode": "Integer", "statuscode": "Integer"}),
        # opportunity.statecode 0 Open / 1 Won / 2 Lost; statuscode 1 In Progress, 2 On Hold, 3 Won,
        # 4 Canceled, 5 Out-Sold (reports.md §1.1, from the opportunity entity reference)
        Entity("opportunity", "opportunities", "opportunityid", "name",
               {"name", "estimatedvalue", "actualvalue", "actualclosedate", "statecode", "statuscode",
                "salesstage"},
               {"customerid_contact": ("customerid", ("contacts",)),
                "customerid_account": ("customerid", ("accounts",)),
                "parentcontactid": ("parentcontactid", ("contacts",)),
                "originatingleadid": ("originatingleadid", ("leads",)), **OWNER},
               states={0: {1, 2}, 1: {3}, 2: {4, 5}}, default_status={0: 1, 1: 3, 2: 4},
               max_lengths={"name": 300},
               types={"statecode": "Integer", "statuscode": "Integer", "salesstage": "Integer",
                      "estimatedvalue": "Money", "actualvalue": "Money", "actualclosedate": "DateTime"}),
        Entity("systemuser", "systemusers", "systemuserid", "fullname",
               {"fullname", "domainname", "internalemailaddress", "isdisabled", "mobilephone"},
               {"parentsystemuserid": ("parentsystemuserid", ("systemusers",))},
               max_lengths={"fullname": 200, "domainname": 1024, "internalemailaddress": 100, "mobilephone": 64},
               types={"isdisabled": "Boolean"}),
        Entity("team", "teams", "teamid", "name", {"name"}, max_lengths={"name": 160}),
        Entity("phonecall", "phonecalls", "activityid", "subject",
               {"subject", "phonenumber", "directioncode", "description", "actualdurationminutes",
                "actualstart", "actualend", "scheduledstart", "scheduledend", "leftvoicemail",
                "prioritycode", "category", "subcategory", "statecode", "statuscode"},
               {**_regarding("phonecall"), **OWNER},
               states={0: {1}, 1: {2, 4}, 2: {3}}, default_status={0: 1, 1: 2, 2: 3}, activity=True,
               max_lengths={**ACTIVITY_LENGTHS, "phonenumber": 200},
               types={**ACTIVITY_TYPES, "directioncode": "Boolean", "leftvoicemail": "Boolean"}),
        Entity("task", "tasks", "activityid", "subject",
               {"subject", "description", "scheduledstart", "scheduledend", "prioritycode",
                "percentcomplete", "statecode", "statuscode"},
               {**_regarding("task"), **OWNER},
               states={0: {2, 3, 4, 7}, 1: {5}, 2: {6}}, default_status={0: 2, 1: 5, 2: 6}, activity=True,
               max_lengths=dict(ACTIVITY_LENGTHS), types={**ACTIVITY_TYPES, "percentcomplete": "Integer"}),
        Entity("annotation", "annotations", "annotationid", "subject",
               {"subject", "notetext", "isdocument", "filename", "mimetype", "documentbody"},
               {"objectid_phonecall": ("objectid", ("phonecalls",)),
                "objectid_contact": ("objectid", ("contacts",)),
                "objectid_account": ("objectid", ("accounts",)), **OWNER},
               max_lengths={"subject": 500, "notetext": 100000, "filename": 255, "mimetype": 256},
               types={"isdocument": "Boolean"}),
    ]
    result = {entity.entity_set: entity for entity in entities}
    for entity_set, columns in (extra_columns or {}).items():
        result[entity_set].columns |= set(columns)
    return result


# -- $filter -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:\d\d))|(?P<word>[A-Za-z_][\w./]*)|(?P<num>-?\d+(?:\.\d+)?))")


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ODataError(400, BAD_QUERY, f"Syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class FilterParser:
    """``a eq 'x' or (b eq 'y' and c ne null)``; contains/endswith are refused as leading wildcards."""

    def __init__(self, text: str, entity: Entity):
        self.tokens = _tokens(text)
        self.pos = 0
        self.entity = entity

    def parse(self) -> Any:
        node = self._or()
        if self.pos != len(self.tokens):
            raise ODataError(400, BAD_QUERY, f"Syntax error: unexpected '{self.tokens[self.pos][1]}'.")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise ODataError(400, BAD_QUERY, "Syntax error: unexpected end of $filter.")
        self.pos += 1
        return token

    def _or(self) -> Any:
        node = self._and()
        while (token := self._peek()) and token[1] == "or":
            self.pos += 1
            node = ("or", node, self._and())
        return node

    def _and(self) -> Any:
        node = self._primary()
        while (token := self._peek()) and token[1] == "and":
            self.pos += 1
            node = ("and", node, self._primary())
        return node

    def _primary(self) -> Any:
        kind, value = self._take()
        if kind == "lp":
            node = self._or()
            if self._take()[0] != "rp":
                raise ODataError(400, BAD_QUERY, "Syntax error: ')' expected.")
            return node
        if kind != "word":
            raise ODataError(400, BAD_QUERY, f"Syntax error at '{value}'.")
        if value in ("contains", "endswith"):
            raise ODataError(
                400, LEADING_WILDCARD,
                "The database operation timed out; this may be due to a leading wildcard value being used in a filter condition.",
            )
        self._column(value)
        op = self._take()[1]
        if op not in ("eq", "ne", "gt", "ge", "lt", "le"):
            raise ODataError(400, BAD_QUERY, f"Operator '{op}' is not supported by this fake.")
        kind, literal = self._take()
        if kind == "str":
            operand: Any = literal[1:-1].replace("''", "'")
        elif kind == "guid":  # Edm.Guid literals are unquoted: _customerid_value eq 00000000-...
            operand = literal.lower()
        elif kind == "dt":  # DateTimeOffset literals are unquoted: createdon ge 2026-03-01T00:00:00Z
            operand = datetime.fromisoformat(literal.replace("Z", "+00:00"))
        elif kind == "num":
            operand = float(literal) if "." in literal else int(literal)
        elif literal in ("true", "false", "null"):
            operand = {"true": True, "false": False, "null": None}[literal]
        else:
            raise ODataError(400, BAD_QUERY, f"Syntax error at '{literal}'.")
        return (op, value, operand)

    def _column(self, name: str) -> None:
        if name not in self.entity.readable():
            raise ODataError(
                400, BAD_QUERY,
                f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{self.entity.logical}'.",
            )


def matches(node: Any, record: dict[str, Any]) -> bool:
    op = node[0]
    if op == "or":
        return matches(node[1], record) or matches(node[2], record)
    if op == "and":
        return matches(node[1], record) and matches(node[2], record)
    value = record.get(node[1])
    operand = node[2]
    if isinstance(operand, datetime):
        value = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    if op in ("gt", "ge", "lt", "le"):
        if value is None or operand is None:
            return False  # null compares as unknown: the row is not returned
        return {"gt": value > operand, "ge": value >= operand, "lt": value < operand, "le": value <= operand}[op]
    if isinstance(value, str) and isinstance(operand, str):
        equal = value.lower() == operand.lower()  # Dataverse string comparison is case-insensitive
    else:
        equal = value == operand
    return equal if op == "eq" else not equal

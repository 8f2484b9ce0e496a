"""What the fake Dynamics knows about tables: entity sets, columns, lookups, state/status pairs, and $filter.

The error codes below are Dynamics' where the reference documents them; the others are marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Documented codes (reference §1.1, §1.4, §1.11).
RESOURCE_NOT_FOUND = "0x8006088a"  # "Resource not found for the segment"
LEADING_WILDCARD = "0x80048573"  # LeadingWildcardCauseTimeout
THROTTLED_REQUESTS = "0x80072322"  # number of requests exceeded
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

    def lookup_columns(self) -> set[str]:
        return {f"_{column}_value" for column, _ in self.navigation.values()}

    def readable(self) -> set[str]:
        return self.columns | self.lookup_columns() | {self.key}


PHONES = {"telephone1", "telephone2", "telephone3"}
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
               {"parentcustomerid_account": ("parentcustomerid", ("accounts",)), **OWNER}),
        Entity("account", "accounts", "accountid", "name", {"name", "emailaddress1", *PHONES}, dict(OWNER)),
        Entity("lead", "leads", "leadid", "fullname",
               {"fullname", "firstname", "lastname", "companyname", "mobilephone", *PHONES}, dict(OWNER)),
        Entity("systemuser", "systemusers", "systemuserid", "fullname",
               {"fullname", "domainname", "internalemailaddress", "isdisabled", "mobilephone"},
               {"parentsystemuserid": ("parentsystemuserid", ("systemusers",))}),
        Entity("team", "teams", "teamid", "name", {"name"}),
        Entity("phonecall", "phonecalls", "activityid", "subject",
               {"subject", "phonenumber", "directioncode", "description", "actualdurationminutes",
                "actualstart", "actualend", "scheduledstart", "scheduledend", "leftvoicemail",
                "prioritycode", "category", "subcategory", "statecode", "statuscode"},
               {**_regarding("phonecall"), **OWNER},
               states={0: {1}, 1: {2, 4}, 2: {3}}, default_status={0: 1, 1: 2, 2: 3}, activity=True),
        Entity("task", "tasks", "activityid", "subject",
               {"subject", "description", "scheduledstart", "scheduledend", "prioritycode",
                "percentcomplete", "statecode", "statuscode"},
               {**_regarding("task"), **OWNER},
               states={0: {2, 3, 4, 7}, 1: {5}, 2: {6}}, default_status={0: 2, 1: 5, 2: 6}, activity=True),
        Entity("annotation", "annotations", "annotationid", "subject",
               {"subject", "notetext", "isdocument", "filename", "mimetype", "documentbody"},
               {"objectid_phonecall": ("objectid", ("phonecalls",)),
                "objectid_contact": ("objectid", ("contacts",)),
                "objectid_account": ("objectid", ("accounts",)), **OWNER}),
    ]
    result = {entity.entity_set: entity for entity in entities}
    for entity_set, columns in (extra_columns or {}).items():
        result[entity_set].columns |= set(columns)
    return result


# -- $filter -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)|(?P<word>[A-Za-z_][\w./]*)|(?P<num>-?\d+(?:\.\d+)?))")


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
        if op not in ("eq", "ne"):
            raise ODataError(400, BAD_QUERY, f"Operator '{op}' is not supported by this fake.")
        kind, literal = self._take()
        if kind == "str":
            operand: Any = literal[1:-1].replace("''", "'")
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
    if isinstance(value, str) and isinstance(operand, str):
        equal = value.lower() == operand.lower()  # Dataverse string comparison is case-insensitive
    else:
        equal = value == operand
    return equal if op == "eq" else not equal

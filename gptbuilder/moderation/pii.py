"""The PII check: email addresses, phone numbers, card numbers (Luhn-checked) and IBANs (mod-97-checked).

Found by pattern, then confirmed where a number carries its own check digits, so an order number is not a
card and a reference is not an IBAN. `mask` replaces each with its kind in brackets: `[email]`, `[card]`.
Presidio was considered: it needs spaCy and a spaCy model downloaded at run time, which nothing here may do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from .base import Finds, Verdict, apart

Kind = Literal["email", "phone", "card", "iban"]
KINDS: tuple[Kind, ...] = ("email", "phone", "card", "iban")
CARD_LENGTHS = (13, 14, 15, 16, 19)  # the lengths networks issue (17 and 18 digits are other numbers' lengths)
LONGEST = 64  # characters held back on a stream for PII: IBANs (34 + spaces) and most email addresses fit

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}(?![\w-])")
# 13-19 digits, alone or in groups split by single spaces or hyphens; networks' numbers start with 2-6.
_CARD = re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])")
# Two letters, two check digits, then up to 30 letters or digits, in groups of four as printed.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])")
# A leading +country code, an area code in parentheses, then groups of digits split by space, dot or hyphen.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?![\w])|(?<![\w+])\+\d{9,15}(?!\w)"
)
# What the phone pattern also matches and is not a phone number: an IPv4 address, a date with its hour.
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)")
_DATE_TIME = re.compile(r"(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:[ T](?:[01]\d|2[0-3]))?")


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn check (card numbers' last digit)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether an IBAN (spaces allowed) has a valid length and passes the ISO 13616 mod-97 check."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if len(digits) in CARD_LENGTHS and luhn(digits):
            yield match.span()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        groups = match.group().split(" ")
        for count in range(len(groups), 0, -1):  # a word after the IBAN may have been taken for its last group
            candidate = " ".join(groups[:count])
            if iban_valid(candidate):
                yield match.start(), match.start() + len(candidate)
                break


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for match in _PHONE.finditer(text):
        number = match.group()
        digits = re.sub(r"\D", "", number)
        if not 9 <= len(digits) <= 15:
            continue
        groups = re.split(r"[ .-]", number)
        if not number.startswith(("+", "(")) and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
            continue  # 1 000 000 000: a large number written in thousands, not a phone number
        if _IPV4.fullmatch(number) or _DATE_TIME.fullmatch(number):
            continue  # an IPv4 address or a date and time (2026-12-06 15:48), as servers' logs are full of
        yield match.span()


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(text):
        yield match.span()


# In order of precedence where two overlap at the same place: numbers with check digits first.
_FINDERS: dict[Kind, Callable[[str], Iterator[tuple[int, int]]]] = {
    "iban": _ibans, "card": _cards, "email": _emails, "phone": _phones,
}


class PII(Finds):
    """Finds personal data of the given kinds (default all); `mask` replaces it with `[kind]`."""

    name = "pii"
    longest = LONGEST

    def __init__(self, kinds: Iterable[Kind] = KINDS):
        self.kinds = tuple(kinds)

    def findings(self, text: str) -> list[Verdict]:
        """Every email, phone number, card number and IBAN in the text, in order, none overlapping."""
        found = (
            Verdict(self.name, kind, start, end) for kind, find in _FINDERS.items() if kind in self.kinds for start, end in find(text)
        )
        return apart(found)

    def mask(self, text: str) -> tuple[str, list[Verdict]]:
        """The text with each finding replaced by `[kind]`, and the findings."""
        found = self.findings(text)
        return replace(text, found), found


def replace(text: str, findings: Iterable[Verdict]) -> str:
    """The text with each (non-overlapping, ordered) finding's span replaced by `[category]`."""
    out, at = [], 0
    for found in findings:
        out += [text[at : found.start], f"[{found.category}]"]
        at = found.end
    return "".join(out) + text[at:]

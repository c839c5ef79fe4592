"""Checkable claims in text: amounts, percentages, times, dates, durations, sizes and other measures, phone
numbers, e-mail addresses, URLs, other numbers (counts written as words too) and proper names, each normalised
so that the same fact matches however it is written (``£42`` = ``42 pounds`` = ``£42.00``; ``7:00`` = ``7am``;
``2 weeks`` = ``14 days``; ``thirty days`` = ``30 days``; ``10MB`` = ``10 megabytes``).

The faithfulness guard (`turn.grounding`) asks, for each sentence of an answer, which of its claims the
sources do not state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a": 1, "an": 1,
}
_CURRENCY_SYMBOLS = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "￥": "CNY", "₹": "INR"}
_CURRENCY_WORDS = {
    "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "quid": "GBP", "dollar": "USD", "dollars": "USD", "usd": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR", "yen": "JPY", "jpy": "JPY", "yuan": "CNY", "rmb": "CNY", "cny": "CNY",
    "元": "CNY", "块钱": "CNY", "块": "CNY", "rupees": "INR", "inr": "INR", "pence": "GBX", "p": "GBX", "cents": "USC",
}
# (how a unit is written, the unit it is counted in, how many of those it is)
_UNITS = (
    ("business", "business day", 1), ("working", "business day", 1), ("min", "minute", 1), ("hour", "hour", 1),
    ("hr", "hour", 1), ("second", "second", 1), ("day", "day", 1), ("week", "day", 7), ("fortnight", "day", 14),
    ("month", "month", 1), ("year", "year", 1),
)
_MONTHS = {
    m: i
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")],
        1,
    )
    for m in names
}

# Chinese: numbers sit against ideographs with no space (so "\b" never matches there), are often written in
# characters before a unit (两天, 三十元), and times are "晚上9点". _cjk rewrites those into the forms below.
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_FULL_WIDTH = str.maketrans("０１２３４５６７８９：％．，", "0123456789:%.,")
_CJK_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CJK_SCALES = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CJK_UNITS = {
    "个工作日": ("business day", 1), "工作日": ("business day", 1), "个小时": ("hour", 1), "小时": ("hour", 1),
    "分钟": ("minute", 1), "天": ("day", 1), "周": ("day", 7), "星期": ("day", 7), "个月": ("month", 1),
    "年": ("year", 1),
}
_CJK_COUNTED = "|".join(sorted([*_CJK_UNITS, "元", "块", "人", "个", "份", "寸", "公里", "次"], key=len, reverse=True))
_CJK_NUMERALS = "零〇一二两三四五六七八九十百千万"
# "一点" alone is "a little": a numeral before 点 is an hour only after a part of the day.
_CJK_NUMERAL = re.compile(
    rf"[{_CJK_NUMERALS}]+(?=\s*(?:{_CJK_COUNTED}))|(?<=早上|上午|中午|下午|晚上|凌晨)[{_CJK_NUMERALS}]+(?=点)"
)
_CJK_CLOCK = re.compile(r"(?P<part>早上|上午|中午|下午|晚上|凌晨)?\s?(?P<h>\d{1,2})\s?点(?:\s?(?P<half>半)|\s?(?P<m>\d{1,2})\s?分)?")


# A number then its unit or currency, spaced apart so word boundaries hold; four digits before 年 are a year
# (2012年开业), not a duration.
_CJK_AMOUNT = re.compile(rf"(\d+(?:\.\d+)?)\s?({_CJK_COUNTED}|块钱)")


def cjk_number(text: str) -> str:
    """Chinese numerals as digits: 两 → 2, 十二 → 12, 三十 → 30, 一百二十 → 120 (a bare 十 is 10)."""
    total = current = 0
    for char in text:
        if char in _CJK_DIGITS:
            current = _CJK_DIGITS[char]
        else:
            total += (current or 1) * _CJK_SCALES[char]
            current = 0
    return str(total + current)


def _cjk_clock(m: re.Match[str]) -> str:
    hour = int(m.group("h"))
    if m.group("part") in ("下午", "晚上") and hour < 12:
        hour += 12
    minute = 30 if m.group("half") else int(m.group("m") or 0)
    return f" {hour:02d}:{minute:02d} "


def _cjk(text: str) -> str:
    """Chinese number and time spellings rewritten as the patterns read them, with space around numbers."""
    if not _CJK.search(text):
        return text
    text = text.translate(_FULL_WIDTH)
    text = _CJK_NUMERAL.sub(lambda m: cjk_number(m.group(0)), text)
    text = _CJK_CLOCK.sub(_cjk_clock, text)
    text = _CJK_AMOUNT.sub(lambda m: m.group(0) if re.fullmatch(r"\d{4}", m.group(1)) else f"{m.group(1)} {m.group(2)} ", text)
    return re.sub(r"(?<=[\u3400-\u9fff\uf900-\ufaff])(?=[\d£$€¥￥+])|(?<=[\d%])(?=[\u3400-\u9fff\uf900-\ufaff])", " ", text)


_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_WORD_NUM = "|".join(sorted((w for w in _NUMBER_WORDS if len(w) > 2), key=len, reverse=True))
_COUNT_WORD = "|".join(sorted((w for w, n in _NUMBER_WORDS.items() if n >= 2), key=len, reverse=True))
_SYMBOL = "|".join(re.escape(s) for s in _CURRENCY_SYMBOLS)
_CUR_WORD = "|".join(sorted((re.escape(w) for w in _CURRENCY_WORDS if len(w) > 1 or _CJK.match(w)), key=len, reverse=True))
_UNIT = "|".join(sorted(_CJK_UNITS, key=len, reverse=True)) + (
    r"|business days?|working days?|minutes?|mins?|hours?|hrs?|days?|weeks?|fortnights?|months?|years?|seconds?"
)
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
# Units a number is measured in besides time and money, each as one spelling (10MB = 10 mb = 10 megabytes).
_MEASURES = {
    "kb": "kb", "kilobytes": "kb", "kilobyte": "kb", "mb": "mb", "megabytes": "mb", "megabyte": "mb", "gb": "gb",
    "gigabytes": "gb", "gigabyte": "gb", "tb": "tb", "terabytes": "tb", "terabyte": "tb", "kib": "kib", "mib": "mib",
    "gib": "gib", "kg": "kg", "kilograms": "kg", "kilogram": "kg", "kilos": "kg", "g": "g", "grams": "g",
    "gram": "g", "mg": "mg", "lb": "lb", "lbs": "lb", "oz": "oz", "km": "km",
    "kilometres": "km", "kilometers": "km", "kilometre": "km", "kilometer": "km", "cm": "cm", "mm": "mm",
    "metres": "m", "meters": "m", "metre": "m", "meter": "m", "ml": "ml", "litres": "l", "liters": "l",
    "litre": "l", "liter": "l", "px": "px", "pixels": "px", "ms": "ms", "milliseconds": "ms", "°c": "°c", "°f": "°f",
}
_MEASURE = "|".join(sorted((re.escape(u) for u in _MEASURES), key=len, reverse=True))

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)),
    ("url", re.compile(r"(?:https?://|www\.)[^\s<>()\[\]\"']+", re.IGNORECASE)),
    ("money", re.compile(
        rf"(?:(?P<sym>{_SYMBOL})\s?(?P<a>{_NUM})(?P<k>[kK]\b)?)"
        rf"|(?:\b(?P<code>gbp|usd|eur|cny|jpy|inr)\s?(?P<b>{_NUM}))"
        rf"|(?:(?P<c>{_NUM})\s?(?P<word>{_CUR_WORD})\b)",
        re.IGNORECASE,
    )),
    ("percent", re.compile(rf"(?P<n>{_NUM})\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)),
    ("quantity", re.compile(rf"(?<![\w.])(?P<n>{_NUM})\s?(?P<unit>{_MEASURE})(?![\w])", re.IGNORECASE)),
    ("time", re.compile(
        r"\b(?P<h>[01]?\d|2[0-3])(?::(?P<m>[0-5]\d))?\s?(?P<ap>a\.?m\.?|p\.?m\.?)(?![a-z])"
        r"|\b(?P<h24>[01]?\d|2[0-3]):(?P<m24>[0-5]\d)\b"
        r"|\b(?P<word>noon|midday|midnight)\b",
        re.IGNORECASE,
    )),
    ("date", re.compile(
        rf"\b(?P<y1>\d{{4}})-(?P<mo1>\d{{1,2}})-(?P<d1>\d{{1,2}})\b"
        rf"|\b(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s(?:of\s)?(?P<mo2>{_MONTH})\.?(?:,?\s(?P<y2>\d{{4}}))?\b"
        rf"|\b(?P<mo3>{_MONTH})\.?\s(?P<d3>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s(?P<y3>\d{{4}}))?"
        rf"|\b(?P<a4>\d{{1,2}})[/.](?P<b4>\d{{1,2}})[/.](?P<y4>\d{{4}})\b",
        re.IGNORECASE,
    )),
    ("duration", re.compile(rf"\b(?P<n>{_NUM}|{_WORD_NUM}|an?)[\s-](?P<unit>{_UNIT})\b", re.IGNORECASE)),
    ("phone", re.compile(r"(?<![\w.])\+?\d[\d ()-]{5,}\d(?![\w.])")),
    ("number", re.compile(rf"(?<![\w.]){_NUM}(?![\w])|\b(?:{_COUNT_WORD})\b(?![-‐])", re.IGNORECASE)),
]
# A contraction is not a name ("Don't"), a possessive is ("Acme's").
_NAME = re.compile(r"(?<![\w'’-])[A-Z][a-z]+(?![a-z])(?!['’](?!s\b))(?:[ -][A-Z][a-z]+(?![a-z])(?!['’](?!s\b)))*")
# Where a sentence (or a list item, a heading, a bold lead-in) starts: its first word is capitalised anyway.
_SENTENCE_START = re.compile(r"(?:(?:^|\n)\s*(?:[-*+>]|\d+[.)]|#{1,6})?\s*|[.!?:;]\s+|[\"'“(]\s*)(?:[*_]{1,3})?$")
_MARKERS = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_LIST_PREFIX = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
# Capitalised words that say nothing checkable (sentence openers are skipped anyway).
_COMMON_WORDS = (
    "I I'm I've I'd I'll OK Ok Yes No Hi Hello Thanks Thank Please Sorry Note Sources Source Mr Mrs Ms Dr "
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday Mon Tue Wed Thu Fri Sat Sun"
)
_COMMON_CAPITALS = frozenset(_COMMON_WORDS.split()) | frozenset(m.capitalize() for m in _MONTHS)


@dataclass(frozen=True)
class Claim:
    """One checkable fact in a sentence: its kind, its normalised value, and the text as written."""

    kind: str
    value: str
    text: str


def _decimal(text: str) -> str:
    """A number as one canonical string: ``1,299.00`` → ``1299``."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    normal = value.normalize()
    return format(normal, "f") if normal == normal.to_integral() or "E" in str(normal) else str(normal)


def _number_word(text: str) -> str:
    word = text.lower()
    return str(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else _decimal(text)


def _money(m: re.Match[str]) -> str:
    if m.group("sym"):
        currency, amount = _CURRENCY_SYMBOLS[m.group("sym")], _decimal(m.group("a"))
        if m.group("k"):
            amount = _decimal(str(Decimal(amount) * 1000))
    elif m.group("code"):
        currency, amount = m.group("code").upper(), _decimal(m.group("b"))
    else:
        currency, amount = _CURRENCY_WORDS[m.group("word").lower()], _decimal(m.group("c"))
    return f"{currency} {amount}"


def _time(m: re.Match[str]) -> str:
    if m.group("word"):
        return "00:00" if m.group("word").lower() == "midnight" else "12:00"
    if m.group("ap"):
        hour, minute = int(m.group("h")) % 12, int(m.group("m") or 0)
        if m.group("ap").lower().startswith("p"):
            hour += 12
        return f"{hour:02d}:{minute:02d}"
    return f"{int(m.group('h24')):02d}:{m.group('m24')}"


def _date(m: re.Match[str]) -> str:
    if m.group("y1"):
        year, month, day = m.group("y1"), int(m.group("mo1")), int(m.group("d1"))
    elif m.group("d2"):
        year, month, day = m.group("y2"), _MONTHS[m.group("mo2").lower()], int(m.group("d2"))
    elif m.group("mo3"):
        year, month, day = m.group("y3"), _MONTHS[m.group("mo3").lower()], int(m.group("d3"))
    else:
        return f"{int(m.group('a4')):02d}/{int(m.group('b4')):02d} {m.group('y4')}"
    return f"{month:02d}-{day:02d}" + (f" {year}" if year else "")


def _duration(m: re.Match[str]) -> str:
    written = m.group("unit").lower()
    unit, factor = _CJK_UNITS.get(written) or next(u[1:] for u in _UNITS if written.startswith(u[0]))
    return f"{_decimal(str(Decimal(_number_word(m.group('n'))) * factor))} {unit}"


_NORMALISE = {
    "email": lambda m: m.group(0).lower().rstrip("."),
    "url": lambda m: re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group(0).lower().rstrip(".,;:!?")).rstrip("/"),
    "money": _money,
    "percent": lambda m: _decimal(m.group("n")),
    "time": _time,
    "date": _date,
    "duration": _duration,
    "phone": lambda m: re.sub(r"\D", "", m.group(0)),
    "quantity": lambda m: f"{_decimal(m.group('n'))} {_MEASURES[m.group('unit').lower()]}",
    "number": lambda m: _number_word(m.group(0)),
}


def plain(text: str) -> str:
    """Text as claims are read from it: citation markers and list bullets removed."""
    return _LIST_PREFIX.sub("", _MARKERS.sub(" ", text))


def claims(text: str, *, names: bool = True) -> list[Claim]:
    """The checkable claims in ``text``, most specific kind first (``£42`` is money, not also the number 42)."""
    text = plain(_cjk(text))
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, Claim]] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(start < b and a < end for a, b in taken):
                continue
            if kind == "phone" and len(re.sub(r"\D", "", m.group(0))) < 7:
                continue
            if kind == "duration" and m.group("n").lower() in ("a", "an") and not re.search(r"\d", m.group(0)):
                continue  # "a day" rarely states a checkable fact
            taken.append((start, end))
            found.append((start, Claim(kind, _NORMALISE[kind](m), m.group(0))))
    if names:
        for m in _NAME.finditer(text):
            start, end = m.span()
            if any(start < b and a < end for a, b in taken):
                continue
            words = re.split(r"[ -]", m.group(0))
            if _SENTENCE_START.search(text[:start]):
                words = words[1:]  # a sentence's first word is capitalised anyway
            words = [w for w in words if w not in _COMMON_CAPITALS]
            if words:
                found.append((start, Claim("name", " ".join(words).lower(), m.group(0))))
    return [claim for _, claim in sorted(found, key=lambda item: item[0])]


class Evidence:
    """What some passages (and the question) state, for asking whether a claim is among it."""

    def __init__(self, texts: Iterable[str]):
        joined = "\n".join(texts)
        self._claims = {(c.kind, c.value) for c in claims(joined, names=False)}
        self._numbers = {c.value for c in _numbers_in(joined)}
        self._text = " ".join(plain(joined).lower().split())
        self._digits = re.sub(r"\D", "", joined)
        self._words = set(re.findall(r"\w+", joined.lower()))

    def supports(self, claim: Claim) -> bool:
        """Whether the passages state this claim (in any of the ways the same fact can be written)."""
        if (claim.kind, claim.value) in self._claims:
            return True
        match claim.kind:
            case "money":
                amount = claim.value.split(" ", 1)[1]
                amounts = {v.split(" ", 1)[1] for k, v in self._claims if k == "money"}
                # A bare number supports an amount only where the passages write no amounts (a price table's cells).
                return amount in amounts or (not amounts and amount in self._numbers)
            case "number":
                return claim.value in self._numbers
            case "date":
                day = claim.value.split(" ")[0]
                if "/" in day:  # 03/04: 3 April or March 4
                    first, second = day.split("/")
                    return any(k == "date" and v.split(" ")[0] in (f"{first}-{second}", f"{second}-{first}") for k, v in self._claims)
                return any(k == "date" and v.split(" ")[0] == day for k, v in self._claims)
            case "phone":
                return claim.value in self._digits
            case "email" | "url":
                return claim.value in self._text
            case "name":
                return all(word in self._words for word in re.findall(r"\w+", claim.value))
        return False

    def unsupported(self, sentence: str) -> list[Claim]:
        """The claims of ``sentence`` the passages do not state."""
        return [c for c in claims(sentence) if not self.supports(c)]


def states(text: str, fact: str) -> bool:
    """Whether ``text`` states ``fact``: each of the fact's claims among the text's, however written; plain words as words."""
    wanted = claims(fact, names=False)
    if not wanted:
        return " ".join(fact.casefold().split()) in " ".join(text.casefold().split())
    found = {(c.kind, c.value) for c in claims(text, names=False)}
    return all((c.kind, c.value) in found for c in wanted)


def _numbers_in(text: str) -> Iterator[Claim]:
    """Every number in the text, whatever it counts (so a bare "42" in a table supports "£42")."""
    for m in re.finditer(rf"(?<![\w.]){_NUM}|\b(?:{_WORD_NUM})\b", plain(_cjk(text)), re.IGNORECASE):
        yield Claim("number", _number_word(m.group(0)), m.group(0))

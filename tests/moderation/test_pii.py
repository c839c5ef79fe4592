"""The PII check: emails, phone numbers, Luhn-checked card numbers and mod-97-checked IBANs, found and masked."""

from __future__ import annotations

import pytest

from gptbuilder.moderation import PII
from gptbuilder.moderation.pii import iban_valid, luhn

pii = PII()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail alice.smith+shop@example.co.uk now", "mail [email] now"),
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("card 5500-0000-0000-0004.", "card [card]."),
        ("pay DE89 3704 0044 0532 0130 00 today", "pay [iban] today"),
        ("IBAN GB82WEST12345698765432 I think", "IBAN [iban] I think"),
        ("IBAN GB82 WEST 1234 5698 7654 32 I think", "IBAN [iban] I think"),
        ("call +44 20 7946 0958 or (555) 123-4567", "call [phone] or [phone]"),
        ("ring 020 7946 0958", "ring [phone]"),
    ],
)
def test_personal_data_is_masked_by_kind(text, masked):
    assert pii.mask(text)[0] == masked


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN DE89 3704 0044 0532 0130 01 fails mod 97",
        "order 12345678901 has no separators",
        "a billion is 1 000 000 000",
        "on 2026-11-03 at 10:30, £1,299.00",
        "version 1.2.3 and user@localhost",
    ],
)
def test_lookalikes_are_left_alone(text):
    assert pii.findings(text) == []


def test_the_check_digits():
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE00 3704 0044 0532 0130 00")
    assert not iban_valid("DE89")


def test_findings_are_named_and_do_not_overlap():
    found = pii.findings("DE89 3704 0044 0532 0130 00 and 4111111111111111")
    assert [f.category for f in found] == ["iban", "card"]
    assert PII(["email"]).findings("bob@example.com, 4111111111111111")[0].category == "email"
    assert len(PII(["email"]).findings("bob@example.com, 4111111111111111")) == 1


@pytest.mark.parametrize("text", ["client 172.16.254.100:5432", "at 2026-12-06 15:48:28", "on 2026-12-06T09:30"])
def test_addresses_and_timestamps_are_not_phone_numbers(text):
    assert pii.findings(text) == []  # logs are full of them, and logs are masked always

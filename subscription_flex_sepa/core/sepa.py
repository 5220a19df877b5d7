"""SEPA direct-debit rules, pure Python (no Odoo): identifiers, calendar, sequence types.

Facts from the EPC SDD rulebooks (see the addon's readme): creditor identifiers are checked
with ISO 7064 mod 97-10 over the national part (the 3-character business code excluded);
mandate references (UMR) are at most 35 characters of ``[A-Za-z0-9 +?/-:().,']``; a file
must reach the bank at the latest on the TARGET2 business day before the collection date
(D-1, every sequence type since November 2016); TARGET2 is closed on weekends, 1 January,
Good Friday, Easter Monday, 1 May, 25 and 26 December.
"""

import re
from datetime import timedelta

import holidays

UMR_RE = re.compile(r"^[A-Za-z0-9 +?/\-:().,']{1,35}$")
CREDITOR_ID_RE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{3}[A-Z0-9]{1,28}$")
SEQUENCE_TYPES = ("FRST", "RCUR", "FNAL", "OOFF")


def _mod97(digits):
    return int(digits) % 97


def _letters_to_digits(text):
    return "".join(str(int(char, 36)) for char in text)


def normalize_creditor_identifier(value):
    return re.sub(r"\s+", "", value or "").upper()


def is_valid_creditor_identifier(value):
    """``DE98ZZZ09999999999``: country, check digits, business code (ignored by the check
    digits), national identifier."""
    ci = normalize_creditor_identifier(value)
    if not CREDITOR_ID_RE.match(ci):
        return False
    national = ci[7:]
    digits = _letters_to_digits(national + ci[:2] + "00")
    check = 98 - _mod97(digits)
    return f"{check:02d}" == ci[2:4]


def is_valid_mandate_reference(value):
    return bool(value) and bool(UMR_RE.match(value))


class Target2Calendar:
    """TARGET2 business days (the ECB calendar of the ``holidays`` package)."""

    def __init__(self):
        self._closed = holidays.financial_holidays("ECB")

    def is_business_day(self, day):
        return day.weekday() < 5 and day not in self._closed

    def next_business_day(self, day):
        """First business day strictly after ``day``."""
        day += timedelta(days=1)
        while not self.is_business_day(day):
            day += timedelta(days=1)
        return day

    def on_or_after(self, day):
        return day if self.is_business_day(day) else self.next_business_day(day)


TARGET2 = Target2Calendar()


def earliest_collection_date(today, calendar=TARGET2):
    """A file sent ``today`` reaches the bank on the first business day on or after
    today; the collection date must be at least one business day later (D-1)."""
    return calendar.next_business_day(calendar.on_or_after(today))


def collection_date(due_date, today, prenotification_days, calendar=TARGET2):
    """The latest of the due date, the pre-notification date (today + days: the debtor
    is told today) and the earliest date the bank accepts, moved to a business day."""
    day = max(
        due_date,
        today + timedelta(days=prenotification_days),
        earliest_collection_date(today, calendar),
    )
    return calendar.on_or_after(day)


def sequence_type(recurrent, first_done, first_policy="frst"):
    """``OOFF`` for one-off mandates; ``FRST`` for the first debit of a recurrent mandate
    when the creditor uses FRST (``first_policy`` ``"frst"``), ``RCUR`` otherwise."""
    if not recurrent:
        return "OOFF"
    if not first_done and first_policy == "frst":
        return "FRST"
    return "RCUR"


def amount_in_cents(amount):
    """Amount (a positive ``Decimal`` or number with at most 2 decimals) in cents."""
    cents = round(amount * 100)
    if cents <= 0:
        raise ValueError("a direct debit needs a positive amount")
    return int(cents)


def end_to_end_id(value, retry=0):
    """EndToEndId: at most 35 characters of the SEPA Latin set; the ``retry``-th new
    debit of the same invoice ends in ``-R<retry>``."""
    cleaned = re.sub(r"[^A-Za-z0-9+?/\-:().,' ]", "-", value)
    suffix = f"-R{retry}" if retry else ""
    return cleaned[: 35 - len(suffix)] + suffix


def add_business_days(day, count, calendar=TARGET2):
    """The ``count``-th TARGET2 business day after ``day`` (returns are possible up to
    D+5 business days in the Core scheme, D+2 in B2B)."""
    for _ in range(count):
        day = calendar.next_business_day(day)
    return day


RETURN_DAYS = {"CORE": 5, "B2B": 2}

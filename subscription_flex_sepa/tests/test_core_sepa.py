from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.tests import BaseCase, tagged

from ..core import sepa


@tagged("post_install", "-at_install")
class TestSepaCore(BaseCase):
    def test_creditor_identifiers(self):
        self.assertTrue(sepa.is_valid_creditor_identifier("DE98ZZZ09999999999"))
        self.assertTrue(sepa.is_valid_creditor_identifier("de98 zzz 0999 9999 999"))
        self.assertTrue(sepa.is_valid_creditor_identifier("IT66ZZZA1B2C3D4E5F6G7H8"))
        # The business code is not in the check digits: any code gives the same digits.
        self.assertTrue(sepa.is_valid_creditor_identifier("DE98ABC09999999999"))
        self.assertFalse(sepa.is_valid_creditor_identifier("DE99ZZZ09999999999"))
        self.assertFalse(sepa.is_valid_creditor_identifier("DE98ZZZ"))
        self.assertFalse(sepa.is_valid_creditor_identifier(""))

    def test_mandate_references(self):
        self.assertTrue(sepa.is_valid_mandate_reference("FLEX-MDT-000001"))
        self.assertTrue(sepa.is_valid_mandate_reference("A1 +?/-:().,'"))
        self.assertFalse(sepa.is_valid_mandate_reference("X" * 36))
        self.assertFalse(sepa.is_valid_mandate_reference("MANDAT_1"))  # underscore
        self.assertFalse(sepa.is_valid_mandate_reference("MANDAT-É"))
        self.assertFalse(sepa.is_valid_mandate_reference(""))

    def test_target2_days(self):
        cal = sepa.TARGET2
        closed = [
            date(2027, 3, 26),  # Good Friday
            date(2027, 3, 29),  # Easter Monday
            date(2028, 5, 1),  # Labour Day (a Monday)
            date(2027, 12, 25),
            date(2027, 12, 26),
            date(2028, 1, 1),
            date(2027, 3, 27),  # Saturday
            date(2027, 3, 28),  # Sunday
        ]
        for day in closed:
            self.assertFalse(cal.is_business_day(day), day)
        self.assertTrue(cal.is_business_day(date(2027, 12, 24)))
        self.assertTrue(cal.is_business_day(date(2027, 12, 27)))
        self.assertEqual(cal.next_business_day(date(2027, 3, 25)), date(2027, 3, 30))

    def test_collection_dates(self):
        # (due, today, pre-notification days) -> collection date
        cases = [
            # Due on a Saturday: the next business day.
            ((date(2027, 3, 6), date(2027, 2, 1), 14), date(2027, 3, 8)),
            # Easter: file on Thursday 25 March, the bank is closed Friday and Monday;
            # D-1 means Tuesday 30 March at the earliest.
            ((date(2027, 3, 25), date(2027, 3, 25), 0), date(2027, 3, 30)),
            # Pre-notification: today + 14 days wins over an earlier due date.
            ((date(2027, 3, 1), date(2027, 3, 1), 14), date(2027, 3, 15)),
            # 1 May 2028 is a Monday and a TARGET2 holiday.
            ((date(2028, 5, 1), date(2028, 4, 1), 5), date(2028, 5, 2)),
            # Christmas 2027: Friday 24 December works; the 25th and 26th do not.
            ((date(2027, 12, 25), date(2027, 12, 1), 14), date(2027, 12, 27)),
            ((date(2027, 12, 24), date(2027, 12, 1), 14), date(2027, 12, 24)),
            # A file sent on Friday 24 December is collected on Monday 27 at the earliest
            # (one business day later); sent on Saturday 25, on Tuesday 28.
            ((date(2027, 12, 20), date(2027, 12, 24), 0), date(2027, 12, 27)),
            ((date(2027, 12, 20), date(2027, 12, 25), 0), date(2027, 12, 28)),
            # New Year.
            ((date(2027, 12, 31), date(2027, 12, 29), 2), date(2027, 12, 31)),
            ((date(2028, 1, 1), date(2027, 12, 1), 14), date(2028, 1, 3)),
        ]
        for (due, today, days), expected in cases:
            self.assertEqual(sepa.collection_date(due, today, days), expected, (due, today))

    @settings(max_examples=300, deadline=None)
    @given(
        due=st.dates(date(2026, 1, 1), date(2030, 12, 31)),
        offset=st.integers(-60, 60),
        days=st.integers(0, 20),
    )
    def test_collection_date_rules(self, due, offset, days):
        today = due + timedelta(days=offset)
        cal = sepa.TARGET2
        day = sepa.collection_date(due, today, days)
        self.assertTrue(cal.is_business_day(day))
        self.assertGreaterEqual(day, due)
        self.assertGreaterEqual(day, today + timedelta(days=days))
        # The file, sent today, reaches the bank at least one business day before.
        self.assertGreater(day, cal.on_or_after(today))
        # And it is the earliest such day.
        previous = day - timedelta(days=1)
        self.assertFalse(
            cal.is_business_day(previous)
            and previous >= due
            and previous >= today + timedelta(days=days)
            and previous > cal.on_or_after(today)
        )

    def test_sequence_types_and_amounts(self):
        self.assertEqual(sepa.sequence_type(True, False, "frst"), "FRST")
        self.assertEqual(sepa.sequence_type(True, True, "frst"), "RCUR")
        self.assertEqual(sepa.sequence_type(True, False, "rcur"), "RCUR")
        self.assertEqual(sepa.sequence_type(False, False, "frst"), "OOFF")
        self.assertEqual(sepa.amount_in_cents(121.0), 12100)
        self.assertEqual(sepa.amount_in_cents(0.29), 29)
        with self.assertRaises(ValueError):
            sepa.amount_in_cents(0)
        self.assertEqual(sepa.end_to_end_id("INV/2027/00001"), "INV/2027/00001")
        self.assertEqual(len(sepa.end_to_end_id("X" * 50)), 35)

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.tests import BaseCase, tagged

from ..core import periods as P

units = st.sampled_from(P.UNITS)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


@tagged("post_install", "-at_install")
class TestPeriods(BaseCase):
    def test_month_end_anchor_does_not_drift(self):
        anchor = date(2027, 1, 31)
        starts = [P.period_at(anchor, 1, "month", i).start for i in range(4)]
        self.assertEqual(
            starts, [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
        )
        self.assertEqual(P.period_at(anchor, 1, "month", 1).end, date(2027, 3, 31))

    def test_leap_year_anchor(self):
        anchor = date(2028, 2, 29)
        self.assertEqual(P.period_at(anchor, 1, "year", 1).start, date(2029, 2, 28))
        self.assertEqual(P.period_at(anchor, 1, "year", 4).start, date(2032, 2, 29))

    def test_period_days_and_last_day(self):
        period = P.period_at(date(2027, 2, 1), 1, "month", 0)
        self.assertEqual(period.days, 28)
        self.assertEqual(period.last_day, date(2027, 2, 28))
        self.assertEqual(P.period_at(date(2027, 3, 1), 2, "week", 0).end, date(2027, 3, 15))

    def test_due_periods_advance_and_arrears(self):
        anchor = date(2026, 1, 1)
        advance = P.due_periods(anchor, 1, "month", anchor, date(2026, 3, 15))
        self.assertEqual(
            [p.start for p in advance], [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
        )
        arrears = P.due_periods(anchor, 1, "month", anchor, date(2026, 3, 15), "arrears")
        self.assertEqual(
            [(p.start, p.end) for p in arrears],
            [(date(2026, 1, 1), date(2026, 2, 1)), (date(2026, 2, 1), date(2026, 3, 1))],
        )
        # Arrears: due the day after the period ends, not on its last day.
        self.assertEqual(
            P.due_periods(anchor, 1, "month", anchor, date(2026, 1, 31), "arrears"), []
        )

    def test_due_periods_stop_cuts_last_period(self):
        anchor = date(2026, 1, 1)
        periods = P.due_periods(
            anchor, 1, "month", anchor, date(2026, 12, 31), stop=date(2026, 3, 10)
        )
        self.assertEqual(periods[-1], P.Period(date(2026, 3, 1), date(2026, 3, 10)))
        self.assertEqual(len(periods), 3)

    def test_due_periods_off_schedule_start_bills_stub(self):
        periods = P.due_periods(date(2026, 1, 1), 1, "month", date(2026, 1, 20), date(2026, 2, 5))
        self.assertEqual(periods[0], P.Period(date(2026, 1, 20), date(2026, 2, 1)))
        self.assertEqual(periods[1].start, date(2026, 2, 1))

    def test_earliest_end_date_commitment_notice_and_boundary(self):
        start = date(2026, 1, 1)
        # Within the 12-month commitment: the commitment end wins.
        self.assertEqual(
            P.earliest_end_date(
                start, date(2026, 3, 10), (12, "month"), (1, "month"), start, 1, "month"
            ),
            date(2027, 1, 1),
        )
        # After it: notice from today (10 Apr), rounded up to the period end (1 May).
        self.assertEqual(
            P.earliest_end_date(
                start, date(2027, 3, 10), (12, "month"), (1, "month"), start, 1, "month"
            ),
            date(2027, 5, 1),
        )
        # Already on a boundary: kept.
        self.assertEqual(
            P.earliest_end_date(
                start, date(2027, 3, 1), (0, "month"), (1, "month"), start, 1, "month"
            ),
            date(2027, 4, 1),
        )

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            P.interval_delta(1, "fortnight")
        with self.assertRaises(ValueError):
            P.period_at(date(2026, 1, 1), 0, "month", 0)
        with self.assertRaises(ValueError):
            P.period_index(date(2026, 1, 1), 1, "month", date(2025, 12, 31))
        with self.assertRaises(ValueError):
            P.due_periods(date(2026, 1, 1), 1, "month", date(2026, 1, 1), date(2026, 2, 1), "later")

    @settings(max_examples=300, deadline=None)
    @given(anchor=days, interval=st.integers(1, 24), unit=units, offset=st.integers(0, 4000))
    def test_period_index_finds_the_containing_period(self, anchor, interval, unit, offset):
        day = anchor + timedelta(days=offset)
        period = P.period_containing(anchor, interval, unit, day)
        self.assertIn(day, period)
        self.assertGreater(period.days, 0)

    @settings(max_examples=200, deadline=None)
    @given(anchor=days, interval=st.integers(1, 12), unit=units, index=st.integers(0, 200))
    def test_periods_are_contiguous(self, anchor, interval, unit, index):
        current = P.period_at(anchor, interval, unit, index)
        following = P.period_at(anchor, interval, unit, index + 1)
        self.assertEqual(current.end, following.start)

    @settings(max_examples=200, deadline=None)
    @given(
        anchor=days,
        interval=st.integers(1, 6),
        unit=units,
        span=st.integers(0, 1500),
        timing=st.sampled_from(["advance", "arrears"]),
    )
    def test_due_periods_cover_without_gap_or_overlap(self, anchor, interval, unit, span, timing):
        today = anchor + timedelta(days=span)
        periods = P.due_periods(anchor, interval, unit, anchor, today, timing)
        expected_start = anchor
        for period in periods:
            self.assertEqual(period.start, expected_start)
            self.assertLessEqual(period.start if timing == "advance" else period.end, today)
            expected_start = period.end
        # The next period is not due yet.
        following = P.period_containing(anchor, interval, unit, expected_start)
        due_on = following.start if timing == "advance" else following.end
        self.assertGreater(due_on, today)

    @settings(max_examples=200, deadline=None)
    @given(
        start=days,
        today_offset=st.integers(0, 2000),
        commitment=st.integers(0, 24),
        notice=st.integers(0, 90),
        interval=st.integers(1, 3),
        unit=units,
    )
    def test_earliest_end_respects_every_rule(
        self, start, today_offset, commitment, notice, interval, unit
    ):
        today = start + timedelta(days=today_offset)
        end = P.earliest_end_date(
            start, today, (commitment, "month"), (notice, "day"), start, interval, unit
        )
        self.assertGreaterEqual(end, P.add_interval(start, commitment, "month"))
        self.assertGreaterEqual(end, today + timedelta(days=notice))
        self.assertEqual(P.period_containing(start, interval, unit, end).start, end)

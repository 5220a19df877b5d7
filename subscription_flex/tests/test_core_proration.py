from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.tests import BaseCase, tagged

from ..core.periods import Period, period_at
from ..core.proration import Terms, change_amounts, prorate, remaining_fraction

D = Decimal
decimals_st = st.sampled_from([0, 2, 3])
terms_st = st.builds(
    Terms,
    price_unit=st.integers(0, 10**6).map(lambda cents: D(cents) / 100),
    quantity=st.integers(0, 500).map(D),
    discount=st.sampled_from([D(0), D(10), D("12.5"), D(100)]),
)


@tagged("post_install", "-at_install")
class TestProration(BaseCase):
    def test_seat_added_mid_month(self):
        # March 2027 has 31 days; on 17 March 15 days are left (17..31).
        march = Period(date(2027, 3, 1), date(2027, 4, 1))
        old = {"seat": Terms(D("10.00"), D(5))}
        new = {"seat": Terms(D("10.00"), D(8))}
        amounts = change_amounts(old, new, march, date(2027, 3, 17), 2)
        # credit 50.00 × 15/31 = 24.193... -> -24.19; charge 80.00 × 15/31 = 38.709... -> 38.71
        self.assertEqual(amounts["seat"], (D("-24.19"), D("38.71")))

    def test_february_and_leap_year(self):
        feb_2027 = Period(date(2027, 2, 1), date(2027, 3, 1))
        feb_2028 = Period(date(2028, 2, 1), date(2028, 3, 1))
        self.assertEqual(remaining_fraction(feb_2027, date(2027, 2, 15)), D(14) / D(28))
        self.assertEqual(remaining_fraction(feb_2028, date(2028, 2, 15)), D(15) / D(29))
        # 29.00 a month, 15 of 29 days left: exactly 15.00.
        self.assertEqual(prorate(Terms(D(29), D(1)), feb_2028, date(2028, 2, 15), 2), D("15.00"))

    def test_first_and_last_day(self):
        april = Period(date(2027, 4, 1), date(2027, 5, 1))
        terms = Terms(D("30.00"), D(1))
        self.assertEqual(prorate(terms, april, date(2027, 4, 1), 2), D("30.00"))
        self.assertEqual(prorate(terms, april, date(2027, 4, 30), 2), D("1.00"))
        with self.assertRaises(ValueError):
            prorate(terms, april, date(2027, 5, 1), 2)

    def test_zero_and_three_decimal_currencies(self):
        month = Period(date(2027, 1, 1), date(2027, 2, 1))  # 31 days, 10 left on 22 Jan
        self.assertEqual(prorate(Terms(D(1000), D(1)), month, date(2027, 1, 22), 0), D(323))
        self.assertEqual(prorate(Terms(D("12.345"), D(1)), month, date(2027, 1, 22), 3), D("3.982"))

    def test_added_and_removed_lines(self):
        month = Period(date(2027, 1, 1), date(2027, 2, 1))
        amounts = change_amounts(
            {"a": Terms(D(31), D(1))}, {"b": Terms(D(62), D(1))}, month, date(2027, 1, 22), 2
        )
        self.assertEqual(amounts, {"a": (D("-10.00"), D(0)), "b": (D(0), D("20.00"))})

    @settings(max_examples=300, deadline=None)
    @given(
        old=terms_st,
        new=terms_st,
        offset=st.integers(0, 400),
        length=st.integers(1, 12),
        decimals=decimals_st,
        data=st.data(),
    )
    def test_change_then_inverse_nets_to_zero(self, old, new, offset, length, decimals, data):
        period = period_at(date(2027, 1, 1) + timedelta(days=offset), length, "month", 0)
        day = period.start + timedelta(days=data.draw(st.integers(0, period.days - 1)))
        forth = change_amounts({"x": old}, {"x": new}, period, day, decimals)["x"]
        back = change_amounts({"x": new}, {"x": old}, period, day, decimals)["x"]
        self.assertEqual(sum(forth) + sum(back), 0)

    @settings(max_examples=200, deadline=None)
    @given(
        steps=st.lists(st.tuples(st.integers(0, 30), terms_st), min_size=1, max_size=6),
        first=terms_st,
        decimals=decimals_st,
    )
    def test_sequence_of_changes_matches_day_weighted_total(self, steps, first, decimals):
        """Billing the period at the first terms, then every change's credit and charge,
        equals Σ terms × days they were in force / period days, within one rounding unit
        per rounded amount."""
        period = Period(date(2027, 1, 1), date(2027, 2, 1))
        changes = sorted(steps, key=lambda step: step[0])
        billed = prorate(first, period, period.start, decimals)
        rounded_amounts = 1
        current, exact = first, D(0)
        previous_day = period.start
        for offset, terms in changes:
            day = period.start + timedelta(days=offset)
            exact += current.subtotal * D((day - previous_day).days) / D(period.days)
            billed += sum(change_amounts({"x": current}, {"x": terms}, period, day, decimals)["x"])
            rounded_amounts += 2
            current, previous_day = terms, day
        exact += current.subtotal * D((period.end - previous_day).days) / D(period.days)
        unit = D(1).scaleb(-decimals)
        self.assertLessEqual(abs(billed - exact), unit / 2 * rounded_amounts)

    @settings(max_examples=100, deadline=None)
    @given(
        lines=st.dictionaries(st.text(min_size=1, max_size=3), terms_st, max_size=5),
        decimals=decimals_st,
    )
    def test_order_of_lines_does_not_matter(self, lines, decimals):
        period = Period(date(2027, 1, 1), date(2027, 2, 1))
        new = {key: Terms(t.price_unit, t.quantity + 1, t.discount) for key, t in lines.items()}
        forward = change_amounts(lines, new, period, date(2027, 1, 9), decimals)
        backward = change_amounts(
            dict(reversed(list(lines.items()))),
            dict(reversed(list(new.items()))),
            period,
            date(2027, 1, 9),
            decimals,
        )
        self.assertEqual(forward, backward)

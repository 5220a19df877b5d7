from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.tests import BaseCase, tagged

from ..core.money import line_subtotal, round_money


@tagged("post_install", "-at_install")
class TestMoney(BaseCase):
    def test_half_up_away_from_zero(self):
        self.assertEqual(round_money(Decimal("2.345"), 2), Decimal("2.35"))
        self.assertEqual(round_money(Decimal("-2.345"), 2), Decimal("-2.35"))
        self.assertEqual(round_money(2.675, 2), Decimal("2.68"))  # float 2.675 is 2.67499...
        self.assertEqual(round_money(Decimal("10.5"), 0), Decimal("11"))
        self.assertEqual(round_money(Decimal("1.0005"), 3), Decimal("1.001"))

    def test_line_subtotal(self):
        self.assertEqual(line_subtotal(49.0, 1, 10.0, 2), Decimal("44.10"))
        self.assertEqual(line_subtotal(Decimal("0.333"), 3, 0, 2), Decimal("1.00"))
        self.assertEqual(line_subtotal(19.99, 7, 12.5, 2), Decimal("122.44"))  # 122.43875
        self.assertEqual(line_subtotal(1000, 1, 33.3333, 0), Decimal("667"))

    @settings(max_examples=300, deadline=None)
    @given(
        cents=st.integers(0, 10**9), qty=st.integers(0, 10**4), decimals=st.sampled_from([0, 2, 3])
    )
    def test_subtotal_is_exact_for_whole_quantities(self, cents, qty, decimals):
        price = Decimal(cents) / 100
        expected = round_money(price * qty, decimals)
        self.assertEqual(line_subtotal(price, qty, 0, decimals), expected)

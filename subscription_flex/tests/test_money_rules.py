"""The money rules of the README, checked on the examples of issue 27 (sections 1–2).

Every expected amount is computed here from the README's rule with ``Fraction``, never
by the code under test: ``price × quantity × (1 − discount%) × days / period days``,
rounded once per line to the currency's decimals, exact halves away from zero.
"""

from datetime import date
from decimal import Decimal
from fractions import Fraction

from odoo import Command
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from .test_changes import ChangeCommon


def rule(price, quantity, discount, days, period_days, decimals):
    """The README's day rule, from the decimal strings of the inputs."""
    exact = (
        Fraction(str(price))
        * Fraction(str(quantity))
        * (100 - Fraction(str(discount)))
        / 100
        * days
        / period_days
    )
    scaled = abs(exact) * 10**decimals
    units = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    return Decimal(units if exact >= 0 else -units).scaleb(-decimals)


def as_decimal(amount, currency):
    return Decimal(repr(currency.round(amount))).quantize(
        Decimal(1).scaleb(-currency.decimal_places)
    )


@tagged("post_install", "-at_install")
class TestMoneyRules(ChangeCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Prices of 3 decimals are billed as such: "Product Price" (the precision of an
        # invoice line's unit price) is set to 3, as the README tells a user to do.
        cls.env.ref("product.decimal_price").digits = 3
        cls.kwd = cls.setup_other_currency("KWD")
        cls.jpy = cls.setup_other_currency("JPY")

    def _versioned_plan(self, name, price, currency, **vals):
        plan = self._create_plan(name=name, **vals)
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.product_seat.id,
                "currency_id": currency.id,
                "date_start": date(2020, 1, 1),
                "price_unit": price,
            }
        )
        return plan

    def assertAmount(self, amount, expected, currency, msg=None):
        self.assertEqual(as_decimal(amount, currency), expected, msg)

    def _items(self, change):
        return {
            item.kind: Decimal(repr(item.amount)).quantize(
                Decimal(1).scaleb(-change.currency_id.decimal_places)
            )
            for item in change.item_ids
        }

    # ----------------------------------------------------------- section 1

    def _kwd_arrears_sub(self):
        """KWD, monthly in arrears from 10 Nov 2025, 22 seats at 0.218 less 40 %; and the
        plan at 37.5 it switches to."""
        old_plan = self._versioned_plan("Basic", 0.218, self.kwd, invoicing_timing="arrears")
        new_plan = self._versioned_plan("Premium", 37.5, self.kwd, invoicing_timing="arrears")
        sub = self._sub(
            plan=old_plan,
            start=date(2025, 11, 10),
            currency_id=self.kwd.id,
            lines=[(self.product_seat, 22, None, 40.0)],
        )
        return sub, new_plan

    def test_arrears_plan_switch_same_seats_bills_the_new_terms_for_their_days(self):
        """KWD, monthly in arrears, 22 seats at 0.218 less 40 %; switch on 9 Dec to a plan
        at 37.5, same seats: 29 days at the old terms, 1 day at the new ones."""
        kwd = self.kwd
        sub, new_plan = self._kwd_arrears_sub()
        change, preview = self._change(
            sub, date(2025, 12, 9), change_type="plan", new_plan_id=new_plan.id
        )
        old_part = rule("0.218", 22, 40, 29, 30, 3)
        self.assertEqual(old_part, Decimal("2.782"))
        self.assertAmount(change.move_id.amount_untaxed, old_part, kwd)
        self.assertEqual(preview["untaxed"], old_part)
        period = self._invoice(sub, date(2025, 12, 10))
        new_part = rule("37.5", 22, 40, 1, 30, 3)
        self.assertEqual(new_part, Decimal("16.500"))
        self.assertAmount(period.amount_untaxed, new_part, kwd)
        line = period.invoice_line_ids
        self.assertEqual((line.flex_period_start, line.flex_period_end), (date(2025, 12, 9),) * 2)

    def test_arrears_plan_switch_next_invoice_quarterly_scheduled(self):
        """EUR, quarterly in arrears, 263 seats 879 → 562.84 on 17 May 2028 (period 18 Feb –
        18 May, 90 days), proration added to the next invoice, scheduled ahead and applied
        by the cron: the period's invoice bills 89 days old, 1 day new."""
        eur = self.currency
        quarterly = {"billing_interval": 3, "invoicing_timing": "arrears"}
        old_plan = self._versioned_plan(
            "Q old", 879.0, eur, proration_mode="next_invoice", **quarterly
        )
        new_plan = self._versioned_plan(
            "Q new", 562.84, eur, proration_mode="next_invoice", **quarterly
        )
        sub = self._sub(
            plan=old_plan, start=date(2028, 2, 18), lines=[(self.product_seat, 263, None, 0.0)]
        )
        change, _preview = self._change(
            sub,
            date(2028, 4, 2),
            change_type="plan",
            new_plan_id=new_plan.id,
            timing="date",
            date=date(2028, 5, 17),
        )
        self.assertEqual(change.state, "scheduled")
        Change = self.Change.with_context(flex_today=date(2028, 5, 17))
        Change._cron_apply_scheduled()
        self.assertEqual(change.state, "applied")
        self.assertFalse(change.move_id)
        period = self._invoice(sub, date(2028, 5, 18))
        old_part = rule("879", 263, 0, 89, 90, 2)
        new_part = rule("562.84", 263, 0, 1, 90, 2)
        self.assertEqual((old_part, new_part), (Decimal("228608.37"), Decimal("1644.74")))
        self.assertAmount(period.amount_untaxed, old_part + new_part, eur)

    def test_arrears_plan_switch_invoice_now_button(self):
        """The same switch as the first test, the period then billed with Invoice Now."""
        kwd = self.kwd
        sub, new_plan = self._kwd_arrears_sub()
        self._change(sub, date(2025, 12, 9), change_type="plan", new_plan_id=new_plan.id)
        sub.with_context(flex_today=date(2025, 12, 10)).action_create_invoices()
        period = self._recurring_invoices(sub)
        self.assertAmount(period.amount_untaxed, rule("37.5", 22, 40, 1, 30, 3), kwd)

    # ----------------------------------------------------------- section 2

    def test_prorations_use_the_unit_price_as_invoiced_jpy(self):
        """JPY, 41 seats at 14,301.643 a month, down to 36 with 7 of 31 days left."""
        jpy = self.jpy
        plan = self._versioned_plan("Yen", 14301.643, jpy)
        sub = self._sub(
            plan=plan,
            start=date(2027, 1, 1),
            currency_id=jpy.id,
            lines=[(self.product_seat, 41, None, 0.0)],
        )
        line = self._seat_line(sub)
        self.assertEqual(line.price_unit, 14301.643)
        self.assertEqual(sub.invoice_ids.invoice_line_ids.price_unit, 14301.643)
        self.assertAmount(sub.invoice_ids.amount_untaxed, rule("14301.643", 41, 0, 1, 1, 0), jpy)
        change, preview = self._set_qty(sub, date(2027, 1, 25), 36)
        credit = -rule("14301.643", 41, 0, 7, 31, 0)
        charge = rule("14301.643", 36, 0, 7, 31, 0)
        self.assertEqual((credit, charge), (Decimal(-132406), Decimal(116259)))
        self.assertEqual(self._items(change), {"credit": credit, "charge": charge})
        self.assertEqual(preview["untaxed"], credit + charge)
        self.assertEqual(change.move_id.move_type, "out_refund")
        self.assertAmount(change.move_id.amount_untaxed, -(credit + charge), jpy)
        self.assertIn("14,301.643", change.item_ids[0].name)

    def test_prorations_use_the_unit_price_as_invoiced_eur_plan_switch(self):
        """EUR, 29 seats at 132.354 less 52 %, switch of plan with 28 of 31 days left."""
        eur = self.currency
        plan = self._versioned_plan("Three decimals", 132.354, eur)
        other = self._versioned_plan("Other", 140.0, eur)
        sub = self._sub(
            plan=plan, start=date(2027, 1, 1), lines=[(self.product_seat, 29, None, 52.0)]
        )
        change, _preview = self._change(
            sub, date(2027, 1, 4), change_type="plan", new_plan_id=other.id
        )
        credit = -rule("132.354", 29, 52, 28, 31, 2)
        self.assertEqual(credit, Decimal("-1664.07"))
        self.assertEqual(self._items(change)["credit"], credit)
        self.assertEqual(self._items(change)["charge"], rule("140", 29, 52, 28, 31, 2))

    def test_custom_price_of_a_change_keeps_its_decimals(self):
        eur = self.currency
        sub = self._sub(start=date(2027, 1, 1), lines=[(self.product_seat, 3, 10.0, 0.0)])
        line = self._seat_line(sub)
        change, _preview = self._change(
            sub,
            date(2027, 1, 11),
            line_ids=[
                Command.create(
                    {
                        "subscription_line_id": line.id,
                        "quantity": 3,
                        "custom_price": True,
                        "price_unit": 12.345,
                    }
                )
            ],
        )
        self.assertEqual(line.price_unit, 12.345)
        self.assertEqual(
            self._items(change),
            {"credit": -rule("10", 3, 0, 21, 31, 2), "charge": rule("12.345", 3, 0, 21, 31, 2)},
        )
        february = self._invoice(sub, date(2027, 2, 1))
        self.assertAmount(february.amount_untaxed, rule("12.345", 3, 0, 1, 1, 2), eur)

    def test_price_with_more_decimals_than_invoices_carry_is_refused(self):
        self.env.ref("product.decimal_price").digits = 2
        plan = self._create_plan(name="Too fine")
        with self.assertRaises(ValidationError) as raised:  # Odoo's: rolls back to a savepoint
            self.env["flex.price"].create(
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "date_start": date(2020, 1, 1),
                    "price_unit": 12.345,
                }
            )
        self.assertIn("Product Price", str(raised.exception))
        self.assertFalse(self.env["flex.price"].search([("plan_id", "=", plan.id)]))

    # ------------------------------------------------------ exact halves

    def test_exact_half_of_a_prorated_charge_rounds_away_from_zero(self):
        """KWD, an option of 7.5 × 4.6 less 25 % added for 1 of 30 days: 25.875 / 30 =
        0.8625 exactly, so 0.863."""
        kwd = self.kwd
        sub = self._sub(
            start=date(2027, 4, 1), currency_id=kwd.id, lines=[(self.product_seat, 2, 10.0, 0.0)]
        )
        change, _preview = self._change(
            sub,
            date(2027, 4, 30),
            line_ids=[
                Command.create(
                    {
                        "product_id": self.product_support.id,
                        "quantity": 7.5,
                        "discount": 25.0,
                        "custom_price": True,
                        "price_unit": 4.6,
                    }
                )
            ],
        )
        expected = rule("4.6", "7.5", 25, 1, 30, 3)
        self.assertEqual(expected, Decimal("0.863"))
        self.assertEqual(self._items(change), {"charge": expected})

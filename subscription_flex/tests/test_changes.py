"""Change requests: the scenario table of issue 5.

Every expected amount is computed by hand in the comments (calendar days of the actual
period, one rounding per line, half away from zero), never by the code under test.
Unless a test says otherwise: monthly plan billed in advance, invoices posted, proration
invoiced on the day, 21% tax excluded from prices, 5 seats at 10.00.
"""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from .common import FlexCommon
from .test_usage import UsageCommon


class ChangeCommon(FlexCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Change = cls.env["flex.subscription.change"]

    # ---------------------------------------------------------------- helpers

    def _sub(self, plan=None, start=date(2027, 3, 1), lines=None, invoice_on=None, **vals):
        sub = self._create_subscription(
            plan=plan,
            start=start,
            lines=lines if lines is not None else [(self.product_seat, 5, 10.0, 0.0)],
            **vals,
        )
        self._invoice(sub, invoice_on or start)
        return sub

    def _seat_line(self, sub, product=None):
        return sub.line_ids.filtered(lambda line: line.product_id == (product or self.product_seat))

    def _change(self, sub, today, confirm=True, **vals):
        """Preview then confirm a change made on ``today``; returns (change, preview)."""
        change = (
            sub.env["flex.subscription.change"]
            .with_context(flex_today=today)
            .create({"subscription_id": sub.id, **vals})
        )
        preview = change._get_preview()
        if confirm:
            change.action_confirm()
        return change, preview

    def _set_qty(self, sub, today, quantity, product=None, **vals):
        line = self._seat_line(sub, product)
        return self._change(
            sub,
            today,
            line_ids=[Command.create({"subscription_line_id": line.id, "quantity": quantity})],
            **vals,
        )

    def assertDocument(self, change, move_type, untaxed, total):
        move = change.move_id
        self.assertEqual(move.move_type, move_type)
        self.assertEqual(move.state, "posted")
        self.assertEqual(
            move.currency_id.round(move.amount_untaxed - untaxed), 0, move.amount_untaxed
        )
        self.assertEqual(move.currency_id.round(move.amount_total - total), 0, move.amount_total)


@tagged("post_install", "-at_install")
class TestChanges(ChangeCommon):
    def test_01_seat_plus_three_mid_month(self):
        sub = self._sub()
        change, preview = self._set_qty(sub, date(2027, 3, 17), 8)
        # March: 31 days, 15 left on the 17th.
        # credit -50.00 × 15/31 = -24.1935 -> -24.19 (tax -5.0799 -> -5.08)
        # charge  80.00 × 15/31 =  38.7097 ->  38.71 (tax  8.1291 ->  8.13)
        self.assertEqual([str(line["untaxed"]) for line in preview["lines"]], ["-24.19", "38.71"])
        self.assertEqual(str(preview["untaxed"]), "14.52")
        self.assertEqual(str(preview["total"]), "17.57")
        self.assertDocument(change, "out_invoice", 14.52, 17.57)
        self.assertEqual(self._seat_line(sub).quantity, 8)
        self.assertEqual(change.state, "applied")
        self.assertEqual(change.effective_date, date(2027, 3, 17))
        # April is billed at the new quantity.
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.amount_untaxed, 80.0)

    def test_02_two_changes_in_one_period(self):
        sub = self._sub()
        first, _preview = self._set_qty(sub, date(2027, 3, 10), 7)
        # 22 days left (10..31): credit -50 × 22/31 = -35.4839 -> -35.48;
        # charge 70 × 22/31 = 49.6774 -> 49.68; net 14.20; tax -7.45 + 10.43 = 2.98
        self.assertDocument(first, "out_invoice", 14.20, 17.18)
        second, _preview = self._set_qty(sub, date(2027, 3, 20), 4)
        # 12 days left (20..31): credit -70 × 12/31 = -27.0968 -> -27.10;
        # charge 40 × 12/31 = 15.4839 -> 15.48; net -11.62: a credit note of 11.62,
        # tax 5.691 -> 5.69 less 3.2508 -> 3.25 = 2.44; total 14.06
        self.assertDocument(second, "out_refund", 11.62, 14.06)

    def test_03_first_day_of_a_billed_period(self):
        sub = self._sub()
        self._invoice(sub, date(2027, 4, 1))  # April already billed at 5 seats
        change, _preview = self._set_qty(sub, date(2027, 4, 1), 6)
        # The whole of April (30/30 days): credit -50.00, charge 60.00; net 10.00 + 2.10
        self.assertDocument(change, "out_invoice", 10.0, 12.10)

    def test_04_first_day_of_a_period_not_billed_yet(self):
        sub = self._sub()
        change, preview = self._set_qty(sub, date(2027, 4, 1), 6)
        # April is not invoiced yet: nothing to prorate, April is billed at 6 seats.
        self.assertEqual(preview["document"], "none")
        self.assertFalse(change.move_id)
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.amount_untaxed, 60.0)

    def test_05_last_day_of_a_period(self):
        sub = self._sub()
        change, _preview = self._set_qty(sub, date(2027, 3, 31), 6)
        # 1 day left: credit -50/31 = -1.6129 -> -1.61; charge 60/31 = 1.9355 -> 1.94;
        # net 0.33; tax -0.3381 -> -0.34 and 0.4074 -> 0.41: 0.07; total 0.40
        self.assertDocument(change, "out_invoice", 0.33, 0.40)

    def test_06_leap_year_february(self):
        sub = self._sub(start=date(2028, 2, 1))
        change, _preview = self._set_qty(sub, date(2028, 2, 15), 8)
        # February 2028 has 29 days, 15 left on the 15th:
        # credit -50 × 15/29 = -25.8621 -> -25.86; charge 80 × 15/29 = 41.3793 -> 41.38;
        # net 15.52; tax -5.4306 -> -5.43 and 8.6898 -> 8.69: 3.26; total 18.78
        self.assertDocument(change, "out_invoice", 15.52, 18.78)

    def test_07_february_of_a_common_year(self):
        sub = self._sub(start=date(2027, 2, 1))
        change, _preview = self._set_qty(sub, date(2027, 2, 15), 8)
        # 28 days, 14 left: credit -25.00, charge 40.00; net 15.00; tax 3.15
        self.assertDocument(change, "out_invoice", 15.0, 18.15)

    def test_08_downgrade_with_credit(self):
        sub = self._sub()
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 2)
        # credit -24.19; charge 20 × 15/31 = 9.6774 -> 9.68; net -14.51;
        # tax 5.0799 -> 5.08 less 2.0328 -> 2.03 = 3.05; credit note total 17.56
        self.assertDocument(change, "out_refund", 14.51, 17.56)

    def test_09_downgrade_at_period_end(self):
        plan = self._create_plan(downgrade_timing="period_end")
        sub = self._sub(plan=plan)
        change, preview = self._set_qty(sub, date(2027, 3, 17), 2)
        self.assertEqual(preview["effective_date"], date(2027, 4, 1))
        self.assertEqual(change.state, "scheduled")
        self.assertEqual(self._seat_line(sub).quantity, 5)
        self.assertEqual(sub.scheduled_change_count, 1)
        self.Change.with_context(flex_today=date(2027, 4, 1))._cron_apply_scheduled()
        self.assertEqual(change.state, "applied")
        self.assertFalse(change.move_id)
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.amount_untaxed, 20.0)

    def test_10_cancel_now_with_refund(self):
        sub = self._sub()
        change, preview = self._change(sub, date(2027, 3, 17), change_type="cancel_now")
        # credit -50 × 15/31 = -24.19; tax 5.08; credit note 29.27
        self.assertEqual(preview["document"], "refund")
        self.assertDocument(change, "out_refund", 24.19, 29.27)
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.end_date, date(2027, 3, 17))

    def test_11_cancel_at_period_end_and_undo(self):
        sub = self._sub()
        change, _preview = self._change(sub, date(2027, 3, 17), change_type="cancel_end")
        self.assertEqual(change.state, "applied")
        self.assertEqual(sub.state, "to_close")
        self.assertEqual(sub.end_date, date(2027, 4, 1))
        self.assertFalse(change.move_id)
        undo, _preview = self._change(sub, date(2027, 3, 18), change_type="undo_cancel")
        self.assertEqual(undo.state, "applied")
        self.assertEqual(sub.state, "active")
        self.assertFalse(sub.end_date)

    def test_12_yen_has_no_decimals(self):
        jpy = self.setup_other_currency("JPY")
        sub = self._sub(currency_id=jpy.id, lines=[(self.product_seat, 3, 1000.0, 0.0)])
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 4)
        # credit -3000 × 15/31 = -1451.61 -> -1452; charge 4000 × 15/31 = 1935.48 -> 1935;
        # net 483; tax -304.92 -> -305 and 406.35 -> 406: 101; total 584
        self.assertDocument(change, "out_invoice", 483, 584)

    def test_13_three_decimal_currency(self):
        kwd = self.setup_other_currency("KWD")
        self.assertEqual(kwd.decimal_places, 3)
        # Invoice line unit prices have the "Product Price" precision (2 by default): a
        # company billing in a 3-decimal currency sets it to 3 (see the README).
        self.env.ref("product.decimal_price").digits = 3
        sub = self._sub(
            start=date(2027, 1, 1),
            currency_id=kwd.id,
            lines=[(self.product_seat, 2, 12.345, 0.0)],
        )
        change, _preview = self._set_qty(sub, date(2027, 1, 22), 3)
        # January: 10 of 31 days left. credit -24.690 × 10/31 = -7.96452 -> -7.965;
        # charge 37.035 × 10/31 = 11.94677 -> 11.947; net 3.982;
        # tax -1.67265 -> -1.673 and 2.50887 -> 2.509: 0.836; total 4.818
        self.assertDocument(change, "out_invoice", 3.982, 4.818)

    def test_14_tax_included_prices(self):
        tax_incl = self.tax_21.copy(
            {"name": "VAT 21% included", "price_include_override": "tax_included"}
        )
        self.product_seat.taxes_id = tax_incl
        sub = self._sub(lines=[(self.product_seat, 5, 12.10, 0.0)])
        self.assertEqual(sub.invoice_ids.amount_total, 60.50)
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        # Amounts include the tax: credit -60.50 × 15/31 = -29.2742 -> -29.27;
        # charge 96.80 × 15/31 = 46.8387 -> 46.84; total 17.57.
        # Untaxed: -29.27 / 1.21 = -24.1901 -> -24.19; 46.84 / 1.21 = 38.7107 -> 38.71
        self.assertDocument(change, "out_invoice", 14.52, 17.57)

    def test_15_add_an_option(self):
        sub = self._sub()
        change, _preview = self._change(
            sub,
            date(2027, 3, 17),
            line_ids=[Command.create({"product_id": self.product_support.id, "quantity": 1})],
        )
        # Support at its list price 49.00: 49 × 15/31 = 23.7097 -> 23.71; tax 4.9791 -> 4.98
        self.assertDocument(change, "out_invoice", 23.71, 28.69)
        self.assertEqual(len(sub.line_ids), 2)
        self.assertEqual(self._seat_line(sub, self.product_support).terms_start, date(2027, 3, 17))

    def test_16_remove_an_option(self):
        sub = self._sub(
            lines=[(self.product_seat, 5, 10.0, 0.0), (self.product_support, 1, 49.0, 0.0)]
        )
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 0, product=self.product_support)
        # credit -49 × 15/31 = -23.71; credit note 23.71 + 4.98
        self.assertDocument(change, "out_refund", 23.71, 28.69)
        self.assertEqual(sub.line_ids.product_id, self.product_seat)

    def test_17_add_to_the_next_invoice(self):
        sub = self._sub()
        change, preview = self._set_qty(sub, date(2027, 3, 17), 8, proration_mode="next_invoice")
        self.assertEqual(preview["document"], "next_invoice")
        self.assertFalse(change.move_id)
        self.assertEqual(set(change.item_ids.mapped("state")), {"pending"})
        april = self._invoice(sub, date(2027, 4, 1))
        # 8 × 10.00 = 80.00, plus -24.19 + 38.71 = 14.52: 94.52
        self.assertEqual(april.amount_untaxed, 94.52)
        self.assertEqual(set(change.item_ids.mapped("state")), {"invoiced"})
        # Never billed twice.
        may = self._invoice(sub, date(2027, 5, 1))
        self.assertEqual(may.amount_untaxed, 80.0)

    def test_18_plan_without_proration(self):
        plan = self._create_plan(proration_mode="none")
        sub = self._sub(plan=plan)
        change, preview = self._set_qty(sub, date(2027, 3, 17), 8)
        self.assertEqual(preview["effective_date"], date(2027, 4, 1))
        self.assertEqual(change.state, "scheduled")
        self.Change.with_context(flex_today=date(2027, 4, 1))._cron_apply_scheduled()
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.amount_untaxed, 80.0)

    def test_19_arrears_period_split_on_next_invoice(self):
        plan = self._create_plan(invoicing_timing="arrears", proration_mode="next_invoice")
        sub = self._sub(plan=plan)
        self.assertFalse(sub.invoice_ids)  # in arrears: nothing billed on 1 March
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        self.assertFalse(change.move_id)
        march = self._invoice(sub, date(2027, 4, 1))
        # 1-16 March at 5 seats: 50 × 16/31 = 25.8065 -> 25.81;
        # 17-31 March at 8 seats: 80 × 15/31 = 38.7097 -> 38.71; total 64.52
        self.assertEqual(march.amount_untaxed, 64.52)
        april = self._invoice(sub, date(2027, 5, 1))
        self.assertEqual(april.amount_untaxed, 80.0)

    def test_20_arrears_period_split_invoiced_now(self):
        plan = self._create_plan(invoicing_timing="arrears")
        sub = self._sub(plan=plan)
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        # The old terms' part is billed on the day: 25.81 + 5.42 tax
        self.assertDocument(change, "out_invoice", 25.81, 31.23)
        march = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(march.amount_untaxed, 38.71)

    def test_21_discounted_line(self):
        sub = self._sub(lines=[(self.product_seat, 5, 10.0, 10.0)])
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        # credit -45 × 15/31 = -21.7742 -> -21.77; charge 72 × 15/31 = 34.8387 -> 34.84;
        # net 13.07; tax -4.5717 -> -4.57 and 7.3164 -> 7.32: 2.75; total 15.82
        self.assertDocument(change, "out_invoice", 13.07, 15.82)

    def test_22_change_during_trial(self):
        plan = self._create_plan(trial_length=14, trial_unit="day")
        sub = self._create_subscription(
            plan=plan, start=date(2027, 3, 1), lines=[(self.product_seat, 5, 10.0, 0.0)]
        )
        change, preview = self._set_qty(sub, date(2027, 3, 5), 8)
        self.assertEqual(preview["document"], "none")
        self.assertEqual(change.state, "applied")
        first = self._invoice(sub, date(2027, 3, 15))
        self.assertEqual(first.amount_untaxed, 80.0)

    def test_23_downgrade_waits_for_minimum_term(self):
        plan = self._create_plan(commitment_length=12, commitment_unit="month")
        sub = self._sub(plan=plan, start=date(2027, 1, 1))
        change, preview = self._set_qty(sub, date(2027, 3, 17), 2)
        self.assertEqual(preview["effective_date"], date(2028, 1, 1))
        self.assertEqual(change.state, "scheduled")
        # An upgrade is not held back.
        upgrade, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        self.assertEqual(upgrade.state, "applied")

    def test_24_scheduled_change_cancelled_and_applied_once(self):
        sub = self._sub()
        kept, _preview = self._set_qty(
            sub, date(2027, 3, 17), 7, timing="date", date=date(2027, 3, 20)
        )
        dropped, _preview = self._set_qty(
            sub, date(2027, 3, 17), 9, timing="date", date=date(2027, 3, 25)
        )
        self.assertEqual((kept.state, dropped.state), ("scheduled", "scheduled"))
        dropped.action_cancel()
        Change = self.Change.with_context(flex_today=date(2027, 3, 25))
        mine = lambda changes: changes.filtered(lambda c: c.subscription_id == sub)  # noqa: E731
        self.assertEqual(mine(Change._cron_apply_scheduled()), kept)
        self.assertFalse(mine(Change._cron_apply_scheduled()))  # twice: nothing more
        # On 20 March, 12 days left: credit -50 × 12/31 = -19.35; charge 70 × 12/31 = 27.10
        self.assertDocument(kept, "out_invoice", 7.75, 9.38)
        self.assertEqual(kept.effective_date, date(2027, 3, 20))
        self.assertEqual(self._seat_line(sub).quantity, 7)
        self.assertEqual(dropped.state, "cancelled")
        with self.assertRaises(UserError):
            kept.action_confirm()

    def test_25_bad_input_writes_nothing(self):
        sub = self._sub()
        moves = sub.invoice_ids
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8, confirm=False)
        change.write({"timing": "date", "date": date(2027, 3, 1)})
        with self.assertRaisesRegex(UserError, "in the past"):
            change.with_context(flex_today=date(2027, 3, 17)).action_confirm()
        self.assertEqual(change.state, "draft")
        self.assertEqual(sub.invoice_ids, moves)
        self.assertEqual(self._seat_line(sub).quantity, 5)
        sub.action_pause()
        with self.assertRaisesRegex(UserError, "cannot be changed"):
            self._set_qty(sub, date(2027, 3, 17), 8)


class PlanChangeCommon(ChangeCommon):
    """Plans priced by versions (no custom prices)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plan_m = cls._create_plan(name="Team monthly")
        cls.plan_pro = cls._create_plan(name="Pro monthly")
        cls.plan_y = cls._create_plan(name="Team yearly", billing_unit="year")
        cls.plan_y_flex = cls._create_plan(
            name="Team yearly (switch down at once)",
            billing_unit="year",
            period_decrease_timing="immediate",
        )
        for plan, price in (
            (cls.plan_m, 10.0),
            (cls.plan_pro, 15.0),
            (cls.plan_y, 100.0),
            (cls.plan_y_flex, 100.0),
        ):
            cls.env["flex.price"].create(
                {
                    "plan_id": plan.id,
                    "product_id": cls.product_seat.id,
                    "date_start": date(2020, 1, 1),
                    "price_unit": price,
                }
            )

    def _versioned_sub(self, plan, start):
        return self._sub(plan=plan, start=start, lines=[(self.product_seat, 5, None, 0.0)])


@tagged("post_install", "-at_install")
class TestPlanChanges(PlanChangeCommon):
    """Plan changes and period switches."""

    def test_26_upgrade_to_another_plan_mid_month(self):
        sub = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        self.assertEqual(sub.invoice_ids.amount_untaxed, 50.0)
        change, _preview = self._change(
            sub, date(2027, 3, 17), change_type="plan", new_plan_id=self.plan_pro.id
        )
        # credit -50 × 15/31 = -24.19; charge 5 × 15.00 = 75 × 15/31 = 36.2903 -> 36.29;
        # net 12.10; tax -5.08 + 7.6209 -> 7.62 = 2.54; total 14.64
        self.assertDocument(change, "out_invoice", 12.10, 14.64)
        self.assertEqual(sub.plan_id, self.plan_pro)
        self.assertEqual(sub.billing_anchor_date, date(2027, 3, 1))
        april = self._invoice(sub, date(2027, 4, 1))
        self.assertEqual(april.amount_untaxed, 75.0)

    def test_27_monthly_to_yearly_at_once(self):
        sub = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        change, preview = self._change(
            sub, date(2027, 3, 17), change_type="plan", new_plan_id=self.plan_y.id
        )
        # credit the unused March: -24.19; charge a whole year from 17 March: 5 × 100 =
        # 500.00; net 475.81; tax -5.08 + 105.00 = 99.92; total 575.73
        self.assertEqual([line["days"] for line in preview["lines"]], [15, 366])
        self.assertDocument(change, "out_invoice", 475.81, 575.73)
        self.assertEqual(sub.billing_anchor_date, date(2027, 3, 17))
        self.assertEqual(sub.next_invoice_date, date(2028, 3, 17))
        self.assertFalse(self._invoice(sub, date(2028, 3, 16)))
        self.assertEqual(self._invoice(sub, date(2028, 3, 17)).amount_untaxed, 500.0)

    def test_28_yearly_to_monthly_scheduled_at_the_end_of_the_year(self):
        sub = self._versioned_sub(self.plan_y, date(2027, 1, 1))
        self.assertEqual(sub.invoice_ids.amount_untaxed, 500.0)
        change, preview = self._change(
            sub, date(2027, 6, 10), change_type="plan", new_plan_id=self.plan_m.id
        )
        self.assertEqual(preview["effective_date"], date(2028, 1, 1))
        self.assertEqual(preview["document"], "none")
        self.assertEqual(change.state, "scheduled")
        self.assertEqual(sub.plan_id, self.plan_y)
        # The change cron runs before the invoicing cron on 1 January.
        self.Change.with_context(flex_today=date(2028, 1, 1))._cron_apply_scheduled()
        self.assertEqual(sub.plan_id, self.plan_m)
        january = self._invoice(sub, date(2028, 1, 1))
        self.assertEqual(january.amount_untaxed, 50.0)
        self.assertEqual(sub.next_invoice_date, date(2028, 2, 1))

    def test_29_yearly_to_monthly_at_once_when_the_plan_allows(self):
        sub = self._versioned_sub(self.plan_y_flex, date(2027, 1, 1))
        change, _preview = self._change(
            sub, date(2027, 7, 1), change_type="plan", new_plan_id=self.plan_m.id
        )
        # 184 of 365 days left (July..December): credit -500 × 184/365 = -252.0548 ->
        # -252.05; charge one month from 1 July: 5 × 10 = 50.00; net -202.05: a credit
        # note of 202.05; tax 52.9305 -> 52.93 less 10.50 = 42.43; total 244.48
        self.assertDocument(change, "out_refund", 202.05, 244.48)
        self.assertEqual(sub.next_invoice_date, date(2027, 8, 1))

    def test_30_plan_change_keeps_custom_prices_and_drops_unknown_products(self):
        sub = self._sub(
            plan=self.plan_m,
            lines=[(self.product_seat, 5, 8.0, 0.0), (self.product_support, 1, 49.0, 0.0)],
        )
        change, preview = self._change(
            sub, date(2027, 3, 17), change_type="plan", new_plan_id=self.plan_pro.id, confirm=False
        )
        # Seat keeps its custom 8.00 (unchanged: nothing to prorate); Support is not sold
        # in Pro: credited, -49 × 15/31 = -23.71
        self.assertEqual([str(line["untaxed"]) for line in preview["lines"]], ["-23.71"])
        change.action_confirm()
        self.assertEqual(sub.line_ids.product_id, self.product_seat)
        self.assertEqual(sub.line_ids.price_unit, 8.0)

    def test_31_change_preview_writes_nothing(self):
        sub = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        change = self.Change.with_context(flex_today=date(2027, 3, 17)).new(
            {"subscription_id": sub.id, "change_type": "plan", "new_plan_id": self.plan_y.id}
        )
        moves = self.env["account.move"].search_count([])
        preview = change._get_preview()
        self.assertEqual(str(preview["untaxed"]), "475.81")
        self.assertIn("475.81", change.preview_html)
        self.assertEqual(self.env["account.move"].search_count([]), moves)
        self.assertEqual(sub.plan_id, self.plan_m)
        self.assertFalse(self.Change.search([("subscription_id", "=", sub.id)]))

    def test_32_trail_of_an_applied_change(self):
        sub = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 8)
        self.assertEqual(change.applied_by_id, self.env.user)
        self.assertEqual(change.old_terms["lines"][0]["quantity"], 5)
        self.assertEqual(change.new_terms["lines"][0]["quantity"], 8)
        self.assertEqual(change.amount_untaxed, 14.52)
        self.assertEqual(sorted(change.item_ids.mapped("amount")), [-24.19, 38.71])
        self.assertEqual(change.item_ids.move_line_ids.move_id, change.move_id)
        self.assertEqual(set(change.item_ids.mapped("days")), {15})
        self.assertEqual(set(change.item_ids.mapped("period_days")), {31})
        self.assertIn("Before:", change.terms_summary)

    def test_35_scheduled_change_after_its_period_was_billed(self):
        plan = self._create_plan(downgrade_timing="period_end")
        sub = self._sub(plan=plan)
        change, _preview = self._set_qty(sub, date(2027, 3, 17), 2)
        # The invoicing cron ran first on 1 April: April was billed at 5 seats.
        self.assertEqual(self._invoice(sub, date(2027, 4, 1)).amount_untaxed, 50.0)
        self.Change.with_context(flex_today=date(2027, 4, 1))._cron_apply_scheduled()
        # The whole of April is re-rated: credit -50.00, charge 20.00: credit note 30.00
        # + 6.30 tax
        self.assertDocument(change, "out_refund", 30.0, 36.30)
        self.assertEqual(self._invoice(sub, date(2027, 5, 1)).amount_untaxed, 20.0)

    def test_36_cancel_now_in_arrears_bills_the_days_used(self):
        plan = self._create_plan(invoicing_timing="arrears")
        sub = self._sub(plan=plan)
        change, _preview = self._change(sub, date(2027, 3, 17), change_type="cancel_now")
        # 1-16 March used: 50 × 16/31 = 25.8065 -> 25.81 + 5.42 tax
        self.assertDocument(change, "out_invoice", 25.81, 31.23)
        self.assertEqual(sub.state, "closed")
        self.assertFalse(self._invoice(sub, date(2027, 4, 1)))

    def test_37_product_named_change_keeps_the_line_discount(self):
        sub = self._sub(lines=[(self.product_seat, 5, 10.0, 10.0)])
        change, _preview = self._change(
            sub,
            date(2027, 3, 17),
            line_ids=[Command.create({"product_id": self.product_seat.id, "quantity": 8})],
        )
        self.assertEqual(len(sub.line_ids), 1)
        self.assertEqual((sub.line_ids.quantity, sub.line_ids.discount), (8, 10.0))
        # as in test_21: -21.77 + 34.84 = 13.07
        self.assertDocument(change, "out_invoice", 13.07, 15.82)

    def test_38_subscription_user_changes_and_minimum_term_binds_users(self):
        user = new_test_user(
            self.env,
            login="flex_change_user",
            groups="subscription_flex.group_flex_user",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        plan = self._create_plan(commitment_length=12, commitment_unit="month")
        sub = self._sub(plan=plan)
        as_user = sub.with_user(user)
        change, _preview = self._set_qty(as_user, date(2027, 3, 17), 8)
        # No invoicing rights needed to bill a change (as with sale orders).
        self.assertFalse(user.has_group("account.group_account_invoice"))
        self.assertDocument(change.sudo(), "out_invoice", 14.52, 17.57)
        self.assertEqual(change.item_ids.mapped("state"), ["invoiced"] * 2)
        with self.assertRaisesRegex(UserError, "minimum term"):
            self._change(as_user, date(2027, 3, 18), change_type="cancel_now")
        self.assertEqual(sub.state, "active")
        # A manager may override the minimum term.
        override, _preview = self._change(sub, date(2027, 3, 18), change_type="cancel_now")
        self.assertEqual(sub.state, "closed")
        # 14 of 31 days of 80.00: 36.1290 -> 36.13 credited
        self.assertDocument(override, "out_refund", 36.13, 43.72)

    def test_39_cancel_now_settles_what_waited_for_the_next_invoice(self):
        sub = self._sub()
        waiting, _preview = self._set_qty(sub, date(2027, 3, 10), 7, proration_mode="next_invoice")
        self.assertFalse(waiting.move_id)
        cancel, _preview = self._change(sub, date(2027, 3, 17), change_type="cancel_now")
        # Waiting from 10 March: -50 × 22/31 = -35.48 and 70 × 22/31 = +49.68;
        # cancel on 17 March: -70 × 15/31 = -33.8710 -> -33.87. Net -19.67: a credit note
        # of 19.67; tax 7.4508 -> 7.45, -10.4328 -> -10.43, 7.1127 -> 7.11: 4.13
        self.assertDocument(cancel, "out_refund", 19.67, 23.80)
        self.assertEqual(set(waiting.item_ids.mapped("state")), {"invoiced"})

    def test_40_order_of_change_lines_does_not_matter(self):
        lines = [(self.product_seat, 5, 10.0, 0.0), (self.product_support, 2, 49.0, 0.0)]
        amounts = []
        for order in (1, -1):
            sub = self._sub(lines=lines)
            commands = [
                Command.create({"subscription_line_id": line.id, "quantity": qty})
                for line, qty in zip(sub.line_ids, (8, 1), strict=True)
            ][::order]
            change, _preview = self._change(sub, date(2027, 3, 17), line_ids=commands)
            amounts.append(sorted(change.item_ids.mapped("amount")))
            # Seats 5 -> 8: -24.19 / +38.71; Support 2 -> 1: -98 × 15/31 = -47.4194 ->
            # -47.42 / +49 × 15/31 = +23.71. Net -9.19: a credit note of 9.19;
            # tax 5.08 - 8.13 + 9.9582 -> 9.96 - 4.9791 -> 4.98 = 1.93; total 11.12
            self.assertDocument(change, "out_refund", 9.19, 11.12)
        self.assertEqual(amounts[0], amounts[1])
        self.assertEqual(amounts[0], [-47.42, -24.19, 23.71, 38.71])

    def test_41_credit_larger_than_the_next_invoice_is_credited_now(self):
        sub = self._sub(
            lines=[(self.product_seat, 1, 10.0, 0.0), (self.product_support, 2, 49.0, 0.0)]
        )
        change, preview = self._set_qty(
            sub, date(2027, 3, 2), 0, product=self.product_support, proration_mode="next_invoice"
        )
        # Support 2 × 49.00 removed on 2 March, 30 of 31 days left: -98 × 30/31 = -94.8387
        # -> -94.84, more than the next invoice (1 seat, 10.00): a credit note now,
        # 94.84 + 19.9164 -> 19.92 tax = 114.76
        self.assertEqual(preview["document"], "refund")
        self.assertDocument(change, "out_refund", 94.84, 114.76)


@tagged("post_install", "-at_install")
class TestMeteredChanges(UsageCommon):
    def test_33_change_date_splits_the_usage_period(self):
        plan_small = self._create_plan(name="Small")
        plan_big = self._create_plan(name="Big")
        sub = self._seat_and_storage_subscription(plan_small)
        self.env["flex.price"].create(
            [
                {
                    "plan_id": plan_big.id,
                    "product_id": product.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": price,
                }
                for product, price in ((self.storage, 1.5), (self.product_seat, 10.0))
            ]
        )
        self._invoice(sub, date(2026, 1, 1))
        self._ingest(
            sub,
            [
                {"product": "GB", "quantity": 5, "time": "2026-01-05T10:00:00Z", "key": "s1"},
                {"product": "GB", "quantity": 8, "time": "2026-01-20T10:00:00Z", "key": "s2"},
            ],
        )
        change = self.env["flex.subscription.change"].with_context(flex_today=date(2026, 1, 15))
        change = change.create(
            {"subscription_id": sub.id, "change_type": "plan", "new_plan_id": plan_big.id}
        )
        change.action_confirm()
        self.assertFalse(change.move_id)  # the seat's terms did not change
        split = sub.invoice_ids.filtered(lambda m: m.flex_billing_kind == "usage_split")
        # 1-14 January with the Small terms: maximum 5 GB × 2.00 = 10.00
        self.assertEqual(split.amount_untaxed, 10.0)
        self.assertEqual(split.invoice_date, date(2026, 1, 15))
        february = self._invoice(sub, date(2026, 2, 1))
        # seat 10.00 + 15-31 January with the Big terms: maximum 8 GB × 1.50 = 12.00
        self.assertEqual(february.amount_untaxed, 22.0)


@tagged("post_install", "-at_install")
class TestChangeProperties(ChangeCommon):
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        steps=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 20)), min_size=1, max_size=4)
    )
    def test_sequence_of_changes_bills_the_day_weighted_amount(self, steps):
        """Whatever changes happen in March, what was invoiced for March (first invoice,
        then each change's invoice or credit note) is Σ 10.00 × seats × days in force / 31,
        within half a cent per rounded amount."""
        savepoint = self.env.cr.savepoint()
        try:
            sub = self._sub()
            billed = Decimal("50.00")
            exact = Decimal(0)
            quantity, since = 5, date(2027, 3, 1)
            rounded = 1
            for offset, new_quantity in sorted(steps):
                day = date(2027, 3, 1) + timedelta(days=offset)
                change, _preview = self._set_qty(sub, day, new_quantity)
                sign = -1 if change.move_id.move_type == "out_refund" else 1
                billed += sign * Decimal(repr(change.move_id.amount_untaxed))
                exact += Decimal(10 * quantity) * Decimal((day - since).days) / 31
                rounded += 2
                quantity, since = new_quantity, day
            exact += Decimal(10 * quantity) * Decimal((date(2027, 4, 1) - since).days) / 31
            self.assertLessEqual(abs(billed - exact), Decimal("0.005") * rounded)
        finally:
            savepoint.close(rollback=True)
            self.env.invalidate_all()


@tagged("post_install", "-at_install")
class TestPlanMigration(PlanChangeCommon):
    def test_34_bulk_move_with_mrr_preview(self):
        monthly = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        kept = self._versioned_sub(self.plan_m, date(2027, 3, 1))
        kept.grandfathered = True
        yearly = self._versioned_sub(self.plan_y, date(2027, 1, 1))
        wizard = (
            self.env["flex.plan.migration"]
            .with_context(
                active_model="flex.subscription",
                active_ids=(monthly | kept | yearly).ids,
                flex_today=date(2027, 3, 17),
            )
            .create({"new_plan_id": self.plan_pro.id, "date_from": date(2027, 3, 17)})
        )
        # Moved: the monthly one (5 × 10.00 -> 5 × 15.00 a month) and the yearly one
        # (5 × 100.00 / 12 = 41.67 a month -> 75.00). Before 50.00 + 41.67 = 91.67,
        # after 150.00, change +58.33. The grandfathered one stays.
        self.assertEqual(wizard.moved_count, 2)
        self.assertAlmostEqual(wizard.mrr_before, 91.67, places=2)
        self.assertAlmostEqual(wizard.mrr_after, 150.0, places=2)
        self.assertAlmostEqual(wizard.mrr_delta, 58.33, places=2)
        self.assertIn("grandfathered", wizard.preview_html)
        wizard.with_context(flex_today=date(2027, 3, 17)).action_confirm()
        changes = self.Change.search([("source", "=", "migration")])
        self.assertEqual(changes.subscription_id, monthly | yearly)
        self.assertEqual(set(changes.mapped("state")), {"scheduled"})
        self.assertEqual(
            {c.subscription_id: c.effective_date for c in changes},
            {monthly: date(2027, 4, 1), yearly: date(2028, 1, 1)},
        )
        self.Change.with_context(flex_today=date(2027, 4, 1))._cron_apply_scheduled()
        self.assertEqual(monthly.plan_id, self.plan_pro)
        self.assertEqual(self._invoice(monthly, date(2027, 4, 1)).amount_untaxed, 75.0)
        self.assertEqual(yearly.plan_id, self.plan_y)  # waits for the end of its year
        self.assertEqual(kept.plan_id, self.plan_m)

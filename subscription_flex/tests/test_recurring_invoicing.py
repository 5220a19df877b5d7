from datetime import date

import psycopg2

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestRecurringInvoicing(FlexCommon):
    def test_amounts_taxes_and_service_period(self):
        sub = self._create_subscription(
            lines=[
                (self.product_seat, 3, 10.0, 0.0),
                (self.product_support, 1, 49.0, 10.0),
            ]
        )
        move = self._invoice(sub, date(2026, 1, 1))
        self.assertEqual(len(move), 1)
        self.assertEqual(move.state, "posted")
        self.assertEqual(move.move_type, "out_invoice")
        self.assertEqual(move.invoice_date, date(2026, 1, 1))
        self.assertEqual(move.partner_id, self.partner)
        # 3 x 10.00 = 30.00; 49.00 - 10% = 44.10; VAT 21%: 6.30 + 9.26 (9.261)
        self.assertAlmostEqual(move.amount_untaxed, 74.10, places=2)
        self.assertAlmostEqual(move.amount_tax, 15.56, places=2)
        self.assertAlmostEqual(move.amount_total, 89.66, places=2)
        self.assertEqual(
            (move.flex_period_start, move.flex_period_end), (date(2026, 1, 1), date(2026, 1, 31))
        )
        for line in move.invoice_line_ids:
            self.assertEqual(
                (line.flex_period_start, line.flex_period_end),
                (date(2026, 1, 1), date(2026, 1, 31)),
            )
            self.assertIn("01/01/2026 - 01/31/2026", line.name)
            self.assertEqual(line.tax_ids, self.tax_21)
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))
        self.assertEqual(sub.invoice_count, 1)

    def test_catch_up_three_missed_periods_once(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        self._run_cron(date(2026, 3, 15))
        moves = self._recurring_invoices(sub)
        self.assertEqual(
            moves.mapped("invoice_date"), [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
        )
        self.assertEqual(
            moves.mapped("flex_period_end"),
            [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)],
        )
        self.assertEqual(moves.mapped("amount_total"), [36.30, 36.30, 36.30])  # 30.00 + 21%
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))
        # Running again, by the cron or the button, creates nothing new.
        self.assertFalse(self._run_cron(date(2026, 3, 15)))
        with self.assertRaises(UserError):
            sub.with_context(flex_today=date(2026, 3, 15)).action_create_invoices()
        self.assertEqual(len(self._recurring_invoices(sub)), 3)

    def test_database_refuses_a_second_invoice_for_a_period(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        move = self._invoice(sub, date(2026, 1, 1))
        with self.assertRaises(psycopg2.errors.UniqueViolation), mute_logger("odoo.sql_db"):
            with self.env.cr.savepoint():
                self.env["account.move"].create(
                    {
                        "move_type": "out_invoice",
                        "partner_id": self.partner.id,
                        "flex_subscription_id": sub.id,
                        "flex_billing_kind": "recurring",
                        "flex_period_start": move.flex_period_start,
                        "invoice_line_ids": [Command.create({"name": "again", "price_unit": 1.0})],
                    }
                )
                self.env.flush_all()

    def test_invoice_even_if_next_period_start_is_rewound(self):
        """A stale schedule (e.g. a restore, a manual edit) still cannot bill twice."""
        sub = self._create_subscription(start=date(2026, 1, 1))
        self._invoice(sub, date(2026, 1, 1))
        sub.next_period_start = date(2026, 1, 1)
        with mute_logger("odoo.addons.subscription_flex.models.flex_subscription", "odoo.sql_db"):
            self.assertFalse(self._invoice(sub, date(2026, 1, 1)))
        self.assertEqual(len(self._recurring_invoices(sub)), 1)
        self.assertIn("duplicate", sub.invoicing_error.lower())

    def test_in_arrears(self):
        plan = self._create_plan(invoicing_timing="arrears")
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))
        self._run_cron(date(2026, 3, 15))
        moves = self._recurring_invoices(sub)
        self.assertEqual(moves.mapped("invoice_date"), [date(2026, 2, 1), date(2026, 3, 1)])
        self.assertEqual(moves.mapped("flex_period_start"), [date(2026, 1, 1), date(2026, 2, 1)])
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 1))

    def test_quarterly_from_month_end(self):
        plan = self._create_plan(billing_interval=3, billing_unit="month")
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 31))
        self._run_cron(date(2026, 8, 1))
        moves = self._recurring_invoices(sub)
        self.assertEqual(
            [(m.flex_period_start, m.flex_period_end) for m in moves],
            [
                (date(2026, 1, 31), date(2026, 4, 29)),
                (date(2026, 4, 30), date(2026, 7, 30)),
                (date(2026, 7, 31), date(2026, 10, 30)),
            ],
        )

    def test_price_versions_and_grandfathering(self):
        plan = self._create_plan()
        self.env["flex.price"].create(
            [
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "currency_id": self.currency.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": 10.0,
                },
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "currency_id": self.currency.id,
                    "date_start": date(2026, 3, 1),
                    "price_unit": 12.0,
                },
            ]
        )
        lines = [(self.product_seat, 3, None, 0.0)]
        sub = self._create_subscription(plan=plan, lines=lines)
        kept = self._create_subscription(plan=plan, lines=lines, grandfathered=True)
        self.assertEqual(sub.line_ids.price_unit, 10.0)
        self._run_cron(date(2026, 3, 15))
        self.assertEqual(self._recurring_invoices(sub).mapped("amount_untaxed"), [30.0, 30.0, 36.0])
        self.assertEqual(
            self._recurring_invoices(kept).mapped("amount_untaxed"), [30.0, 30.0, 30.0]
        )
        self.assertEqual(self._recurring_invoices(sub)[-1].amount_total, 43.56)  # 36.00 + 7.56
        # The subscription now shows the price it is billed; the grandfathered one keeps its.
        self.assertEqual(sub.line_ids.price_unit, 12.0)
        self.assertEqual(sub.recurring_total, 36.0)
        self.assertEqual(kept.line_ids.price_unit, 10.0)

    def test_price_without_version_falls_back_to_sales_price(self):
        sub = self._create_subscription(lines=[(self.product_support, 2, None, 0.0)])
        self.assertEqual(sub.line_ids.price_unit, 49.0)
        self.assertEqual(sub.recurring_total, 98.0)
        self.assertEqual(sub.mrr, 98.0)

    def test_failing_subscription_is_isolated(self):
        good = self._create_subscription(start=date(2026, 1, 1))
        archived_product = self._create_product(
            name="Legacy", lst_price=5.0, type="service", flex_is_subscription=True
        )
        archived = self._create_subscription(lines=[(archived_product, 1, 5.0, 0.0)])
        archived_product.active = False
        deprecated_account = self.company_data["default_account_revenue"].copy(
            {"deprecated": False}
        )
        broken_product = self._create_product(
            name="Broken",
            lst_price=7.0,
            type="service",
            flex_is_subscription=True,
            property_account_income_id=deprecated_account.id,
        )
        broken = self._create_subscription(lines=[(broken_product, 1, 7.0, 0.0)])
        deprecated_account.deprecated = True

        with mute_logger("odoo.addons.subscription_flex.models.flex_subscription"):
            self._run_cron(date(2026, 1, 1))
        self.assertEqual(len(self._recurring_invoices(good)), 1)
        self.assertFalse(self._recurring_invoices(archived | broken))
        for sub, text in ((archived, "archived"), (broken, "deprecated")):
            self.assertIn(text, sub.invoicing_error)
            self.assertTrue(sub.activity_ids.filtered(lambda a: a.summary == "Invoicing failed"))
            self.assertTrue(
                sub.message_ids.filtered(lambda m: "Recurring invoicing failed" in (m.body or ""))
            )
        # The cron does not spin on them today...
        self.assertFalse(self._run_cron(date(2026, 1, 1)))
        # ...and picks them up again tomorrow, once fixed.
        archived_product.active = True
        deprecated_account.deprecated = False
        self._run_cron(date(2026, 1, 2))
        self.assertEqual(len(self._recurring_invoices(archived | broken)), 2)
        self.assertFalse(archived.invoicing_error)

    def test_invoicing_modes(self):
        draft_plan = self._create_plan(invoicing_mode="draft")
        send_plan = self._create_plan(invoicing_mode="send")
        draft = self._invoice(self._create_subscription(plan=draft_plan), date(2026, 1, 1))
        sent = self._invoice(self._create_subscription(plan=send_plan), date(2026, 1, 1))
        self.assertEqual(draft.state, "draft")
        self.assertEqual(sent.state, "posted")
        self.assertTrue(sent.sending_data)
        self.assertFalse(draft.sending_data)

    def test_deleting_last_draft_makes_period_due_again(self):
        plan = self._create_plan(invoicing_mode="draft")
        sub = self._create_subscription(plan=plan)
        move = self._invoice(sub, date(2026, 1, 1))
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 1))
        move.unlink()
        self.assertEqual(sub.next_invoice_date, date(2026, 1, 1))
        self.assertEqual(len(self._invoice(sub, date(2026, 1, 1))), 1)

    def test_foreign_currency_prices_and_journal_amounts(self):
        eur = self.setup_other_currency("EUR")  # 2 EUR for 1 unit of company currency in 2026
        plan = self._create_plan()
        self.env["flex.price"].create(
            [
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "currency_id": eur.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": 19.99,
                },
                {
                    "plan_id": plan.id,
                    "product_id": self.product_seat.id,
                    "currency_id": self.currency.id,
                    "date_start": date(2025, 1, 1),
                    "price_unit": 9.0,
                },
            ]
        )
        sub = self._create_subscription(
            plan=plan, lines=[(self.product_seat, 3, None, 0.0)], currency_id=eur.id
        )
        self.assertEqual(sub.line_ids.price_unit, 19.99)
        move = self._invoice(sub, date(2026, 1, 1))
        self.assertEqual(move.currency_id, eur)
        self.assertEqual(move.amount_untaxed, 59.97)  # 3 x 19.99 EUR
        self.assertEqual(move.amount_tax, 12.59)  # 21% of 59.97 = 12.5937
        self.assertEqual(move.amount_total, 72.56)
        # Journal items in company currency at the invoice date's rate (2 EUR = 1), each
        # item converted and rounded on its own: 59.97 / 2 = 29.985 -> 29.99 and
        # 12.59 / 2 = 6.295 -> 6.30, so the receivable is 36.29 (not 72.56 / 2 = 36.28).
        product_line = move.line_ids.filtered(lambda line: line.display_type == "product")
        tax_line = move.line_ids.filtered(lambda line: line.display_type == "tax")
        self.assertEqual((product_line.balance, tax_line.balance), (-29.99, -6.30))
        receivable = move.line_ids.filtered(lambda line: line.display_type == "payment_term")
        self.assertEqual(receivable.amount_currency, 72.56)
        self.assertEqual(receivable.balance, 36.29)

    def test_multi_company_cron(self):
        other = self.setup_other_company(name="Flex Other Co")
        company2 = other["company"]
        tax2 = self.env["account.tax"].create(
            {
                "name": "VAT 10% co2",
                "amount": 10.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": company2.id,
            }
        )
        product2 = self.env["product.product"].create(
            {
                "name": "Seat co2",
                "type": "service",
                "flex_is_subscription": True,
                "company_id": company2.id,
                "taxes_id": [Command.set(tax2.ids)],
                "lst_price": 20.0,
            }
        )
        plan2 = self.env["flex.plan"].create({"name": "Co2 monthly", "company_id": company2.id})
        partner2 = self.env["res.partner"].create(
            {"name": "Co2 customer", "company_id": company2.id}
        )
        sub2 = self.Subscription.with_company(company2).create(
            {
                "partner_id": partner2.id,
                "plan_id": plan2.id,
                "company_id": company2.id,
                "start_date": date(2026, 1, 1),
                "line_ids": [Command.create({"product_id": product2.id, "quantity": 2})],
            }
        )
        sub2.action_confirm()
        sub1 = self._create_subscription(start=date(2026, 1, 1))
        self._run_cron(date(2026, 1, 1))
        move1, move2 = self._recurring_invoices(sub1), self._recurring_invoices(sub2)
        self.assertEqual(move1.company_id, self.company)
        self.assertEqual(move2.company_id, company2)
        self.assertEqual(move2.journal_id.company_id, company2)
        self.assertEqual(move2.amount_total, 44.0)  # 2 x 20.00 + 10%
        self.assertEqual(move2.currency_id, sub2.currency_id)

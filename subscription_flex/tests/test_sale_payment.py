"""A subscription quotation paid online: Sales confirms it when the payment is done, the
subscription invoices the first period at once, and the payment Odoo creates for the
transaction is reconciled with that invoice (not left as an unreconciled credit while
the invoice stays open and is dunned).

Amounts by hand: 3 seats × 10.00 = 30.00, 21% = 6.30, 36.30."""

from datetime import timedelta

from odoo import Command, fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.account_payment.tests.common import AccountPaymentCommon

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestSalePaidOnline(FlexCommon, AccountPaymentCommon):
    def _paid(self, order):
        tx = self._create_transaction(
            flow="redirect",
            amount=order.amount_total,
            currency_id=order.currency_id.id,
            partner_id=order.partner_invoice_id.id,
            reference=f"{order.name}-flex",
            sale_order_ids=[Command.set(order.ids)],
            state="done",
        )
        with mute_logger("odoo.addons.sale.models.payment_transaction"):
            tx._post_process()
        return tx

    def _order(self):
        return self.env["sale.order"].create(
            {
                "partner_id": self.partner.id,
                "company_id": self.company.id,
                "order_line": [
                    Command.create(
                        {
                            "product_id": self.product_seat.id,
                            "product_uom_qty": 3,
                            "flex_plan_id": self.plan_monthly.id,
                        }
                    )
                ],
            }
        )

    def test_paid_quotation_pays_the_first_invoice(self):
        order = self._order()
        self.assertAlmostEqual(order.amount_total, 36.30, places=2)
        tx = self._paid(order)
        self.assertEqual(order.state, "sale")
        sub = order.flex_created_subscription_ids
        invoice = sub.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "posted")
        self.assertAlmostEqual(invoice.amount_total, 36.30, places=2)
        self.assertEqual(tx.invoice_ids, invoice)
        self.assertTrue(tx.payment_id)
        self.assertAlmostEqual(invoice.amount_residual, 0.0, places=2)
        self.assertIn(invoice.payment_state, ("in_payment", "paid"))
        # Processed again (a provider's notification twice): one payment, still paid.
        tx._post_process()
        self.assertEqual(
            len(self.env["account.payment"].search([("payment_transaction_id", "=", tx.id)])), 1
        )

    def test_paid_with_automatic_invoicing(self):
        """Sales' *automatic invoice* setting invoices a paid order itself: the order's
        subscription lines have nothing for it to invoice, and the subscription's invoice
        is the one paid."""
        self.env["ir.config_parameter"].sudo().set_param("sale.automatic_invoice", "True")
        order = self._order()
        tx = self._paid(order)
        invoice = order.flex_created_subscription_ids.invoice_ids
        self.assertEqual(len(invoice), 1)
        self.assertEqual(order.invoice_ids, invoice)
        self.assertEqual(tx.invoice_ids, invoice)
        self.assertAlmostEqual(invoice.amount_residual, 0.0, places=2)

    def test_paid_upsell_pays_the_change_invoice(self):
        today = fields.Date.today()
        start = today - timedelta(days=10)
        sub = self._create_subscription(start=start, lines=[(self.product_seat, 5, None, 0.0)])
        sub._create_recurring_invoices(today)
        change = self.env["flex.subscription.change"].create(
            {
                "subscription_id": sub.id,
                "line_ids": [
                    Command.create({"subscription_line_id": sub.line_ids.id, "quantity": 8})
                ],
            }
        )
        order = self.env["sale.order"].browse(change.action_flex_create_quotation()["res_id"])
        tx = self._paid(order)
        self.assertEqual(order.state, "sale")
        self.assertEqual(change.state, "applied")
        move = change.move_id
        self.assertEqual(move.move_type, "out_invoice")
        # What the customer paid is what the change invoiced, to the cent.
        self.assertEqual(move.currency_id.compare_amounts(move.amount_total, tx.amount), 0)
        self.assertEqual(tx.invoice_ids, move)
        self.assertAlmostEqual(move.amount_residual, 0.0, places=2)

    def test_paid_ahead_of_a_later_start_pays_the_first_invoice_when_it_comes(self):
        start = fields.Date.today() + timedelta(days=5)
        order = self._order()
        order.flex_start_date = start
        tx = self._paid(order)
        sub = order.flex_created_subscription_ids
        self.assertFalse(sub.invoice_ids)  # nothing due yet: the payment waits as a credit
        self.assertTrue(tx.payment_id)
        invoice = sub._create_recurring_invoices(start)
        self.assertEqual(invoice.state, "posted")
        self.assertAlmostEqual(invoice.amount_total, 36.30, places=2)
        self.assertAlmostEqual(invoice.amount_residual, 0.0, places=2)
        self.assertIn(invoice, tx.invoice_ids)
        # The second month: nothing left of the payment, the invoice stays open.
        second = sub._create_recurring_invoices(fields.Date.add(start, months=1))
        self.assertAlmostEqual(second.amount_residual, 36.30, places=2)

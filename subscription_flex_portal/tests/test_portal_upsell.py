"""An upsell quotation signed by the customer in Odoo's portal (the Sales signature
flow, ``/my/orders/<id>/accept``): signing confirms the order, which applies the change
and invoices the prorated difference; a quotation whose amounts no longer hold is refused
in the customer's words, and expires after the day its amounts are for.

Amounts by hand: credit of the 5 seats and charge of the 8 seats at 10.00 for the days
left of the month, one rounding per line, 21% tax per line."""

import json
from datetime import timedelta
from decimal import Decimal

from odoo import Command
from odoo.tools import mute_logger

from .common import PortalCommon, money

# A 1×1 PNG, as the signature widget sends it (base64, no data: prefix).
SIGNATURE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
    "AABJRU5ErkJggg=="
)


class TestPortalUpsell(PortalCommon):
    def setUp(self):
        super().setUp()
        self.authenticate(self.user_portal.login, self.user_portal.login)

    def _upsell(self, seats):
        change = self.env["flex.subscription.change"].create(
            {
                "subscription_id": self.sub.id,
                "line_ids": [
                    Command.create(
                        {"subscription_line_id": self._seat_line(self.sub).id, "quantity": seats}
                    )
                ],
            }
        )
        action = change.action_flex_create_quotation()
        order = self.env["sale.order"].browse(action["res_id"])
        order.write({"require_signature": True, "require_payment": False})
        order.action_quotation_sent()
        return order

    def _sign(self, order):
        """POST the signature as the portal's widget does; returns the JSON-RPC body."""
        response = self.url_open(
            f"/my/orders/{order.id}/accept",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "id": 1,
                    "params": {
                        "access_token": order._portal_ensure_token(),
                        "name": "Pat Customer",
                        "signature": SIGNATURE,
                    },
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_signing_the_upsell_applies_it_and_invoices_the_difference(self):
        _start, _end, left, days = self._period()
        order = self._upsell(8)
        # Valid the day its amounts are for: today.
        self.assertEqual(order.validity_date, self.today)
        self.assertFalse(order.is_expired)
        credit = money(Decimal(-50) * left / days)
        charge = money(Decimal(80) * left / days)
        total = credit + charge + money(credit * Decimal("0.21")) + money(charge * Decimal("0.21"))
        self.assertEqual(money(order.amount_total), total)
        body = self._sign(order)
        self.assertNotIn("error", body, body)
        self.env.invalidate_all()
        self.assertEqual(order.state, "sale")
        self.assertEqual(order.signed_by, "Pat Customer")
        change = order.flex_change_id
        self.assertEqual(change.state, "applied")
        self.assertEqual(self._seat_line(self.sub).quantity, 8)
        self.assertEqual(change.move_id.move_type, "out_invoice")
        self.assertEqual(money(change.move_id.amount_total), total)
        self.assertEqual(order.invoice_ids, change.move_id)

    def test_an_outdated_upsell_is_refused_in_the_customers_words(self):
        order = self._upsell(8)
        # Meanwhile the subscription changed (one more seat, confirmed in the back office):
        # the quotation's credit of 5 seats no longer holds.
        self.env["flex.subscription.change"].create(
            {
                "subscription_id": self.sub.id,
                "line_ids": [
                    Command.create(
                        {"subscription_line_id": self._seat_line(self.sub).id, "quantity": 6}
                    )
                ],
            }
        ).action_confirm()
        invoices = self.sub.invoice_ids
        with mute_logger("odoo.http"):
            body = self._sign(order)
        message = body["error"]["data"]["message"]
        self.assertIn("This quotation is out of date", message)
        self.assertIn("Please ask", message)
        self.assertNotIn("Update Quotation", message)  # the salesperson's words
        self.env.invalidate_all()
        self.assertIn(order.state, ("draft", "sent"))
        self.assertEqual(order.flex_change_id.state, "draft")
        self.assertEqual(self._seat_line(self.sub).quantity, 6)
        self.assertEqual(self.sub.invoice_ids, invoices)

    def test_an_upsell_expires_after_its_day(self):
        order = self._upsell(8)
        order.validity_date = self.today - timedelta(days=1)  # made yesterday
        self.assertTrue(order.is_expired)
        body = self._sign(order)
        self.assertIn("error", body["result"])  # Odoo's own refusal: nothing to sign
        self.env.invalidate_all()
        self.assertEqual(order.flex_change_id.state, "draft")
        self.assertEqual(self._seat_line(self.sub).quantity, 5)
        # Update Quotation: today's amounts, valid today.
        order.action_flex_update_quotation()
        self.assertEqual(order.validity_date, self.today)
        self.assertFalse(order.is_expired)

"""Self-service changes over HTTP: form, preview (the core's amounts), confirm once.

Expected amounts are computed here by hand: prorated amount = subtotal × days left /
days in the period, rounded once per line to the cent, half away from zero; 21% tax per
line, rounded the same way.
"""

from decimal import Decimal

from odoo import Command
from odoo.tests import tagged

from .common import PortalCommon, money

TAX = Decimal("0.21")


@tagged("post_install", "-at_install")
class TestPortalChanges(PortalCommon):
    def setUp(self):
        super().setUp()
        self.authenticate(self.user_portal.login, self.user_portal.login)

    def _expected(self, *amounts):
        untaxed = sum(amounts, Decimal(0))
        tax = sum((money(amount * TAX) for amount in amounts), Decimal(0))
        return untaxed, untaxed + tax

    def _fmt(self, amount):
        """An amount as the portal prints it (en_US, company currency)."""
        return f"{abs(amount):,.2f}"

    def _preview_then_confirm(self, action, **data):
        response = self.url_open(self._url(self.sub, action), allow_redirects=False)
        self.assertEqual(response.status_code, 200, "the form")
        self.assertFalse(self._changes(self.sub), "a form writes nothing")
        response = self._post(self.sub, action, step="preview", **data)
        self.assertEqual(response.status_code, 200, response.text[-2000:])
        change = self._changes(self.sub)
        self.assertEqual(len(change), 1)
        self.assertEqual((change.state, change.source), ("draft", "portal"))
        self.assertEqual(change.requested_by_id, self.user_portal)
        self.assertIn("o_flex_portal_confirm", response.text)
        preview = response.text
        response = self._post(self.sub, action, step="confirm", change_id=change.id)
        self.assertEqual(response.status_code, 200, response.text[-2000:])
        self.env.invalidate_all()
        return change, preview, response.text

    def test_add_a_seat_prorated_invoice(self):
        _start, _end, left, days = self._period()
        change, preview, result = self._preview_then_confirm(
            "quantity", line_id=self._seat_line(self.sub).id, quantity="6"
        )
        credit = money(Decimal(-50) * left / days)
        charge = money(Decimal(60) * left / days)
        untaxed, total = self._expected(credit, charge)
        self.assertIn(self._fmt(total), preview)
        self.assertIn(self._fmt(credit), preview)
        self.assertIn(self._fmt(charge), preview)
        self.assertEqual(change.state, "applied")
        self.assertEqual(change.applied_by_id, self.user_portal)
        self.assertEqual(self._seat_line(self.sub).quantity, 6)
        move = change.move_id
        self.assertEqual(move.move_type, "out_invoice")
        self.assertEqual(move.state, "posted")
        self.assertAlmostEqual(move.amount_untaxed, float(untaxed), places=2)
        self.assertAlmostEqual(move.amount_total, float(total), places=2)
        self.assertIn(move.name, result)
        self.assertIn("o_flex_portal_pay", result)
        self.assertIn(f"/my/invoices/{move.id}", result)
        # The invoice page of the link opens for the customer (payable online there).
        response = self.url_open(f"/my/invoices/{move.id}?access_token={move.access_token}")
        self.assertEqual(response.status_code, 200)
        self.assertIn(move.name, response.text)

    def test_amounts_changed_since_the_preview(self):
        line = self._seat_line(self.sub)
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=7)
        change = self._changes(self.sub)
        before = self._snapshot(self.sub)
        # Another key than the preview the customer saw (e.g. shown on another day).
        response = self._post(
            self.sub,
            "quantity",
            step="confirm",
            change_id=change.id,
            preview_key=self._preview_key.replace("|", "|9", 1),
        )
        self.assertEqual(response.status_code, 409)
        self.assertIn("The amounts changed since the preview", response.text)
        self.assertIn("o_flex_portal_confirm", response.text)
        self.assertEqual(self._snapshot(self.sub), before)
        self.assertEqual(change.state, "draft")
        # Confirmed from the new preview, it applies.
        response = self._post(self.sub, "quantity", step="confirm", change_id=change.id)
        self.assertEqual(response.status_code, 200)
        self.env.invalidate_all()
        self.assertEqual(change.state, "applied")

    def test_confirming_twice_applies_once(self):
        line = self._seat_line(self.sub)
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=7)
        change = self._changes(self.sub)
        first = self._post(self.sub, "quantity", step="confirm", change_id=change.id)
        self.assertEqual(first.status_code, 200)
        invoices = self.sub.invoice_ids
        second = self._post(self.sub, "quantity", step="confirm", change_id=change.id)
        self.assertEqual(second.status_code, 200)
        self.assertIn("This change was already confirmed.", second.text)
        self.env.invalidate_all()
        self.assertEqual(self.sub.invoice_ids, invoices)
        self.assertEqual(len(change.item_ids.filtered(lambda item: item.kind == "charge")), 1)
        self.assertEqual(self._seat_line(self.sub).quantity, 7)

    def test_abandoned_previews_expire_then_go(self):
        line = self._seat_line(self.sub)
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=7)
        old_preview = self._changes(self.sub)
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=8)
        fresh_preview = self._changes(self.sub) - old_preview
        back_office = self.env["flex.subscription.change"].create(
            {
                "subscription_id": self.sub.id,
                "line_ids": [Command.create({"subscription_line_id": line.id, "quantity": 9})],
            }
        )
        # Two days old: the first preview and the back-office draft.
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE flex_subscription_change SET create_date = now() - interval '2 days'"
            " WHERE id = ANY(%s)",
            [[old_preview.id, back_office.id]],
        )
        self.env.invalidate_all()
        Change = self.env["flex.subscription.change"]
        self.assertEqual(Change._gc_portal_previews(), (1, 0))
        self.assertEqual((old_preview.state, old_preview.flex_preview_expired), ("cancelled", True))
        self.assertEqual(fresh_preview.state, "draft")  # less than a day old
        self.assertEqual(back_office.state, "draft")  # people's work stays
        self.assertNotIn(old_preview, self.sub._portal_history())  # never the customer's
        # Confirming the expired preview: a clear message, nothing written.
        before = self._snapshot(self.sub)
        response = self._post(self.sub, "quantity", step="confirm", change_id=old_preview.id)
        self.assertEqual(response.status_code, 409)
        self.assertIn("This preview has expired: preview the change again.", response.text)
        self.assertEqual(self._snapshot(self.sub), before)
        # A month later it is deleted; a change the customer confirmed stays.
        self._post(self.sub, "quantity", step="preview", line_id=line.id, quantity=6)
        confirmed = self._changes(self.sub).sorted("id")[-1]
        response = self._post(self.sub, "quantity", step="confirm", change_id=confirmed.id)
        self.assertEqual(response.status_code, 200)
        self.env.invalidate_all()
        self.assertEqual(confirmed.state, "applied")
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE flex_subscription_change SET write_date = now() - interval '31 days',"
            " create_date = now() - interval '31 days' WHERE id = ANY(%s)",
            [[old_preview.id, confirmed.id]],
        )
        self.env.invalidate_all()
        self.assertEqual(Change._gc_portal_previews(), (0, 1))
        self.assertFalse(old_preview.exists())
        self.assertEqual(confirmed.state, "applied")

    def test_remove_seats_credit_note(self):
        _start, _end, left, days = self._period()
        change, _preview, result = self._preview_then_confirm(
            "quantity", line_id=self._seat_line(self.sub).id, quantity="2"
        )
        credit = money(Decimal(-50) * left / days)
        charge = money(Decimal(20) * left / days)
        untaxed, total = self._expected(credit, charge)
        move = change.move_id
        self.assertEqual(move.move_type, "out_refund")
        self.assertAlmostEqual(-move.amount_untaxed, float(untaxed), places=2)
        self.assertAlmostEqual(-move.amount_total, float(total), places=2)
        self.assertIn("Credit note", result)
        self.assertNotIn("o_flex_portal_pay", result)

    def test_add_and_remove_an_option(self):
        _start, _end, left, days = self._period()
        option = self.plan_monthly.line_ids.filtered("optional")
        change, _preview, _result = self._preview_then_confirm("option_add", option_id=option.id)
        support = self.sub.line_ids.filtered(lambda line: line.product_id == self.product_support)
        self.assertEqual(support.quantity, 1)
        charge = money(Decimal(30) * left / days)
        _untaxed, total = self._expected(charge)
        self.assertAlmostEqual(change.move_id.amount_total, float(total), places=2)
        response = self._post(self.sub, "option_remove", step="preview", line_id=support.id)
        self.assertEqual(response.status_code, 200)
        removal = self._changes(self.sub).filtered(lambda c: c.state == "draft")
        self._post(self.sub, "option_remove", step="confirm", change_id=removal.id)
        self.env.invalidate_all()
        self.assertEqual(removal.state, "applied")
        self.assertNotIn(self.product_support, self.sub.line_ids.product_id)
        # Removed on the day it was added: the credit equals the charge, to the cent.
        self.assertAlmostEqual(removal.move_id.amount_total, float(total), places=2)
        self.assertEqual(removal.move_id.move_type, "out_refund")

    def test_switch_monthly_to_yearly(self):
        _start, _end, left, days = self._period()
        change, preview, result = self._preview_then_confirm("plan", plan_id=self.plan_yearly.id)
        # The unused part of the month is credited, a whole year charged from today at
        # the yearly plan's price version (100.00 a seat).
        credit = money(Decimal(-50) * left / days)
        charge = Decimal("500.00")
        untaxed, total = self._expected(credit, charge)
        self.assertIn(self._fmt(total), preview)
        self.assertEqual(self.sub.plan_id, self.plan_yearly)
        self.assertEqual(self.sub.billing_anchor_date, self.today)
        self.assertAlmostEqual(change.move_id.amount_untaxed, float(untaxed), places=2)
        self.assertAlmostEqual(change.move_id.amount_total, float(total), places=2)
        self.assertIn("o_flex_portal_pay", result)

    def test_cancel_at_period_end_and_undo(self):
        _start, end, _left, _days = self._period()
        change, preview, result = self._preview_then_confirm(
            "cancel", when="period_end", reason_id=self.reason.id, note="Too many seats"
        )
        self.assertIn("nothing is refunded", preview)
        self.assertEqual(change.change_type, "cancel_end")
        self.assertEqual(self.sub.state, "to_close")
        self.assertEqual(self.sub.end_date, end)
        self.assertEqual(self.sub.close_reason_id, self.reason)
        self.assertFalse(change.move_id)
        page = self.url_open(self._url(self.sub)).text
        self.assertIn("o_flex_portal_undo", page)
        self.assertNotIn("o_flex_portal_cancel", page)
        undo, _preview, _result = self._preview_then_confirm_second("undo")
        self.assertEqual(undo.change_type, "undo_cancel")
        self.assertEqual(self.sub.state, "active")
        self.assertFalse(self.sub.end_date)

    def _preview_then_confirm_second(self, action, **data):
        known = self._changes(self.sub)
        response = self._post(self.sub, action, step="preview", **data)
        self.assertEqual(response.status_code, 200)
        change = self._changes(self.sub) - known
        response = self._post(self.sub, action, step="confirm", change_id=change.id)
        self.assertEqual(response.status_code, 200)
        self.env.invalidate_all()
        return change, None, response.text

    def test_cancel_now_with_refund(self):
        _start, _end, left, days = self._period()
        change, preview, _result = self._preview_then_confirm(
            "cancel", when="now", reason_id=self.reason.id
        )
        credit = money(Decimal(-50) * left / days)
        untaxed, total = self._expected(credit)
        self.assertIn(self._fmt(total), preview)
        self.assertEqual(self.sub.state, "closed")
        self.assertEqual(change.move_id.move_type, "out_refund")
        self.assertAlmostEqual(-change.move_id.amount_total, float(total), places=2)
        self.assertAlmostEqual(-change.move_id.amount_untaxed, float(untaxed), places=2)

    def test_cancel_now_not_allowed_by_the_plan(self):
        yearly = self._running_subscription(self.customer, plan=self.plan_yearly)
        before = self._snapshot(yearly)
        page = self.url_open(self._url(yearly, "cancel")).text
        self.assertNotIn('value="now"', page)
        response = self._post(
            yearly, "cancel", step="preview", when="now", reason_id=self.reason.id
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("This way of cancelling is not available for your plan.", response.text)
        self.plan_yearly.portal_cancel = "none"
        response = self._post(
            yearly, "cancel", step="preview", when="period_end", reason_id=self.reason.id
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("cannot be cancelled from the portal", response.text)
        self.assertEqual(self._snapshot(yearly), before)

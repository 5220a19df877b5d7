from datetime import date

from odoo.tests import Form, tagged

from .common import FlexCommon


@tagged("post_install", "-at_install")
class TestForms(FlexCommon):
    def test_plan_fills_lines_except_optional_addons(self):
        plan = self._create_plan(
            line_ids=[
                (0, 0, {"product_id": self.product_seat.id, "quantity": 5}),
                (0, 0, {"product_id": self.product_support.id, "optional": True}),
            ]
        )
        self.env["flex.price"].create(
            {
                "plan_id": plan.id,
                "product_id": self.product_seat.id,
                "currency_id": self.currency.id,
                "date_start": date(2020, 1, 1),
                "price_unit": 8.5,
            }
        )
        form = Form(self.Subscription)
        form.partner_id = self.partner
        form.start_date = date(2026, 1, 1)
        form.plan_id = plan
        sub = form.save()
        self.assertEqual(sub.line_ids.product_id, self.product_seat)
        self.assertEqual(sub.line_ids.quantity, 5)
        self.assertEqual(sub.line_ids.price_unit, 8.5)
        self.assertEqual(sub.recurring_total, 42.5)
        self.assertEqual(sub.state, "draft")

    def test_typed_price_becomes_custom_price(self):
        form = Form(self.Subscription)
        form.partner_id = self.partner
        form.plan_id = self.plan_monthly
        with form.line_ids.new() as line:
            line.product_id = self.product_seat
            self.assertEqual(line.price_unit, 10.0)
            self.assertFalse(line.price_overridden)
            line.price_unit = 7.5
            self.assertTrue(line.price_overridden)
        sub = form.save()
        self.assertEqual((sub.line_ids.price_unit, sub.line_ids.price_overridden), (7.5, True))

    def test_period_label(self):
        self.assertEqual(self.plan_monthly.period_label, "Monthly")
        quarterly = self._create_plan(billing_interval=3, billing_unit="month")
        self.assertEqual(quarterly.period_label, "Every 3 months")

    def test_close_wizard_shows_rule_and_schedules_end(self):
        plan = self._create_plan(notice_length=10, notice_unit="day")
        sub = self._create_subscription(plan=plan, start=date(2026, 1, 1))
        action = sub.action_open_close_wizard()
        wizard_form = Form(
            self.env[action["res_model"]].with_context(
                action["context"], flex_today=date(2026, 1, 25)
            )
        )
        self.assertEqual(wizard_form.earliest_end_date, date(2026, 3, 1))  # 4 Feb -> 1 Mar
        wizard_form.close_reason_id = self.env.ref("subscription_flex.close_reason_not_used")
        wizard_form.save().with_context(flex_today=date(2026, 1, 25)).action_confirm()
        self.assertEqual(sub.state, "to_close")
        self.assertEqual(sub.end_date, date(2026, 3, 1))
        self.assertEqual(
            sub.close_reason_id, self.env.ref("subscription_flex.close_reason_not_used")
        )

    def test_smart_buttons(self):
        sub = self._create_subscription(start=date(2026, 1, 1))
        contact = self.env["res.partner"].create({"name": "Contact", "parent_id": self.partner.id})
        self._create_subscription(partner=contact)
        self.assertEqual(self.partner.flex_subscription_count, 2)
        self.assertEqual(self.product_seat.product_tmpl_id.flex_subscription_count, 2)
        self.assertEqual(self.plan_monthly.subscription_count, 2)
        action = self.partner.action_view_flex_subscriptions()
        self.assertEqual(
            self.Subscription.search(action["domain"]).partner_id.commercial_partner_id,
            self.partner,
        )
        self._invoice(sub, date(2026, 1, 1))
        action = sub.action_view_invoices()
        self.assertEqual(action["res_id"], sub.invoice_ids.id)

    def test_change_form_previews_then_confirms(self):
        sub = self._create_subscription(
            start=date(2027, 3, 1), lines=[(self.product_seat, 5, 10.0, 0.0)]
        )
        self._invoice(sub, date(2027, 3, 1))
        action = sub.action_open_change()
        Change = self.env[action["res_model"]].with_context(
            **action["context"], flex_today=date(2027, 3, 17)
        )
        form = Form(Change)
        self.assertEqual(form.change_type, "lines")
        with form.line_ids.new() as line:
            line.subscription_line_id = sub.line_ids
            self.assertEqual(line.product_id, self.product_seat)
            self.assertEqual(line.current_quantity, 5)
            line.quantity = 8
        # The preview follows the edits, before anything is saved:
        # -50 × 15/31 = -24.19 and 80 × 15/31 = 38.71, net 14.52 + 3.05 tax = 17.57
        self.assertIn("17.57", form.preview_html)
        self.assertIn("15/31", form.preview_html)
        change = form.save()
        self.assertEqual(sub.line_ids.quantity, 5)  # saved as a draft: nothing applied
        change.with_context(flex_today=date(2027, 3, 17)).action_confirm()
        self.assertEqual(sub.line_ids.quantity, 8)
        self.assertEqual(change.move_id.amount_total, 17.57)
        self.assertIn("17.57", change.preview_html)

"""Pages a customer reads: /my entry and counter, the list (paging, sorting, filter) and
the subscription page (plan, state, lines, next invoice and its estimate, usage, invoices,
history)."""

import json
import re
from datetime import datetime, time, timedelta
from unittest.mock import patch

from odoo import Command
from odoo.tests import tagged
from odoo.tools import format_date

from odoo.addons.subscription_flex_portal.controllers.portal import FlexSubscriptionPortal

from .common import PortalCommon


@tagged("post_install", "-at_install")
class TestPortalPages(PortalCommon):
    def setUp(self):
        super().setUp()
        self.authenticate(self.user_portal.login, self.user_portal.login)

    def _row_names(self, html):
        return re.findall(r'class="o_flex_portal_row">\s*<td><a href="[^"]*">([^<]+)</a>', html)

    def test_home_entry_and_counter(self):
        page = self.url_open("/my/home")
        self.assertEqual(page.status_code, 200)
        self.assertIn('href="/my/subscriptions"', page.text)
        self.assertIn('data-placeholder_count="flex_subscription_count"', page.text)
        response = self.url_open(
            "/my/counters",
            data=json.dumps({"params": {"counters": ["flex_subscription_count"]}}),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.json()["result"], {"flex_subscription_count": 1})
        # A draft (not started) is not the customer's business yet.
        self.env["flex.subscription"].create(
            {
                "partner_id": self.customer.id,
                "plan_id": self.plan_monthly.id,
                "company_id": self.company.id,
                "line_ids": [Command.create({"product_id": self.product_seat.id})],
            }
        )
        response = self.url_open(
            "/my/counters",
            data=json.dumps({"params": {"counters": ["flex_subscription_count"]}}),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.json()["result"], {"flex_subscription_count": 1})

    def test_list_paging_sorting_and_filter(self):
        subs = self.sub
        for _n in range(3):
            subs |= self._running_subscription(self.customer, seats=2)
        closed = subs[-1]
        closed.action_close_now(reason=self.reason)
        by_name = sorted(subs.mapped("name"))
        with patch.object(FlexSubscriptionPortal, "_items_per_page", 3):
            first = self.url_open("/my/subscriptions?sortby=name").text
            self.assertEqual(self._row_names(first), by_name[:3])
            self.assertIn("/my/subscriptions/page/2", first)
            second = self.url_open("/my/subscriptions/page/2?sortby=name").text
            self.assertEqual(self._row_names(second), by_name[3:])
            self.assertNotIn(self.rival_sub.name, first + second)
            closed_only = self.url_open("/my/subscriptions?filterby=closed").text
            self.assertEqual(self._row_names(closed_only), [closed.name])
            running = self.url_open("/my/subscriptions?filterby=running&sortby=name").text
            self.assertEqual(self._row_names(running), sorted((subs - closed).mapped("name")))
            # Unknown sort or filter keys fall back to the defaults (newest first).
            fallback = self.url_open("/my/subscriptions?sortby=evil&filterby=evil")
            self.assertEqual(fallback.status_code, 200)
            self.assertEqual(len(self._row_names(fallback.text)), 3)

    def test_subscription_page(self):
        self._post(
            self.sub, "quantity", step="preview", line_id=self._seat_line(self.sub).id, quantity=6
        )
        change = self._changes(self.sub)
        self._post(self.sub, "quantity", step="confirm", change_id=change.id)
        self.env.invalidate_all()
        page = self.url_open(self._url(self.sub))
        self.assertEqual(page.status_code, 200)
        html = page.text
        self.assertIn("Team Monthly", html)
        self.assertIn("Monthly", html)
        self.assertIn(">Active<", html)
        self.assertIn("Portal Seat", html)
        self.assertIn(format_date(self.env, self.sub.next_invoice_date), html)
        # Next invoice: 6 seats at 10.00 (untaxed), no usage.
        self.assertRegex(
            html, r'o_flex_portal_estimate"[^>]*>\$\xa0<span class="oe_currency_value">60\.00<'
        )
        for invoice in self.sub.invoice_ids:
            self.assertIn(invoice.name, html)
        self.assertIn(change.move_id.name, html)
        self.assertIn("o_flex_portal_history", html)
        # The owner's actions
        self.assertIn(f"/my/subscriptions/{self.sub.id}/quantity?line_id=", html)
        self.assertIn("o_flex_portal_add", html)
        self.assertIn(f"plan?plan_id={self.plan_yearly.id}", html)
        self.assertIn("Switch to Yearly billing", html)
        self.assertIn("o_flex_portal_cancel", html)

    def test_usage_with_included_quantity_left(self):
        api = self._create_product(
            name="Portal API calls",
            type="service",
            flex_is_subscription=True,
            flex_metered=True,
            flex_aggregation="sum",
            flex_unit_label="calls",
            taxes_id=[Command.set(self.tax_21.ids)],
        )
        plan = self.env["flex.plan"].create(
            {
                "name": "Metered plan",
                "price_ids": [
                    Command.create(
                        {
                            "product_id": api.id,
                            "price_unit": 0.01,
                            "included_quantity": 1000,
                            "date_start": self.today - timedelta(days=400),
                        }
                    )
                ],
            }
        )
        sub = self.env["flex.subscription"].create(
            {
                "partner_id": self.customer.id,
                "plan_id": plan.id,
                "company_id": self.company.id,
                "start_date": self.start,
                "line_ids": [
                    Command.create({"product_id": self.product_seat.id, "quantity": 2}),
                    Command.create({"product_id": api.id, "quantity": 1}),
                ],
            }
        )
        sub.action_confirm()
        moment = datetime.combine(self.today, time(0, 0)) - timedelta(days=1)
        result = self.env["flex.usage"]._ingest(
            [
                {
                    "subscription": sub.id,
                    "product": api.id,
                    "quantity": quantity,
                    "time": moment.isoformat(),
                    "key": f"portal-{n}",
                }
                for n, quantity in enumerate((1200, 50))
            ]
        )
        self.assertEqual(result["accepted"], 2, result)
        html = self.url_open(self._url(sub)).text
        self.assertIn("o_flex_portal_usage", html)
        self.assertRegex(html, r'o_flex_portal_used"[^>]*>1,250<')
        # 1,250 used of 1,000 included: nothing left, 250 × 0.01 = 2.50 so far; the
        # estimate is the seats' 20.00 plus 2.50.
        self.assertRegex(html, r'o_flex_portal_left"[^>]*>0<')
        self.assertIn('so far $\xa0<span class="oe_currency_value">2.50<', html)
        self.assertRegex(
            html, r'o_flex_portal_estimate"[^>]*>\$\xa0<span class="oe_currency_value">22\.50<'
        )
        self.assertIn('style="width: 100%"', html)

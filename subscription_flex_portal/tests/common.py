"""Shared data of the portal tests: one company with its chart (account's test base), a
21% tax, seats (editable in the portal between 1 and 10) and an optional support add-on,
a monthly plan that may switch to a yearly one, two customers with a portal user each.

Subscriptions start 10 days before today (the HTTP server runs on the real clock), are
invoiced for their first month, and changes are prorated on the actual days: expected
amounts are computed in the tests from the price, the days left and the period length,
with ``Decimal`` and one rounding per line (half away from zero), never by the code
under test.
"""

import html
import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta

from odoo import Command, fields
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.account.tests.common import AccountTestInvoicingHttpCommon

CENT = Decimal("0.01")


def money(value):
    """Round half away from zero to the cent (the core's rule, written again here)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@tagged("post_install", "-at_install")
class PortalCommon(AccountTestInvoicingHttpCommon):
    @classmethod
    def get_default_groups(cls):
        return super().get_default_groups() | cls.env.ref("subscription_flex.group_flex_manager")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.company = cls.company_data["company"]
        cls.currency = cls.company.currency_id
        cls.today = fields.Date.today()
        cls.tax_21 = env["account.tax"].create(
            {
                "name": "VAT 21% (portal tests)",
                "amount": 21.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": cls.company.id,
            }
        )
        cls.product_seat = cls._create_product(
            name="Portal Seat",
            lst_price=10.0,
            type="service",
            flex_is_subscription=True,
            taxes_id=[Command.set(cls.tax_21.ids)],
        )
        cls.product_support = cls._create_product(
            name="Portal Support",
            lst_price=30.0,
            type="service",
            flex_is_subscription=True,
            taxes_id=[Command.set(cls.tax_21.ids)],
        )
        Plan = env["flex.plan"]
        cls.plan_yearly = Plan.create(
            {
                "name": "Team Yearly",
                "billing_interval": 1,
                "billing_unit": "year",
                "portal_cancel": "period_end",
                "line_ids": cls._plan_lines(),
                "price_ids": [
                    Command.create(
                        {
                            "product_id": cls.product_seat.id,
                            "price_unit": 100.0,
                            "date_start": cls.today - timedelta(days=400),
                        }
                    )
                ],
            }
        )
        cls.plan_monthly = Plan.create(
            {
                "name": "Team Monthly",
                "billing_interval": 1,
                "billing_unit": "month",
                "portal_cancel": "now",
                "portal_switch_plan_ids": [Command.set(cls.plan_yearly.ids)],
                "line_ids": cls._plan_lines(),
            }
        )
        cls.plan_yearly.portal_switch_plan_ids = [Command.set(cls.plan_monthly.ids)]
        cls.reason = env["flex.close.reason"].create({"name": "Too expensive (tests)"})

        cls.customer = env["res.partner"].create({"name": "Portal Customer Co", "is_company": True})
        cls.rival = env["res.partner"].create({"name": "Rival Customer Co", "is_company": True})
        cls.user_portal = cls._portal_user("flex_portal_a", cls.customer)
        cls.user_rival = cls._portal_user("flex_portal_b", cls.rival)
        cls.start = cls.today - timedelta(days=10)
        cls.sub = cls._running_subscription(cls.customer)
        cls.rival_sub = cls._running_subscription(cls.rival)

    @classmethod
    def _plan_lines(cls):
        return [
            Command.create(
                {
                    "product_id": cls.product_seat.id,
                    "quantity": 1,
                    "portal_editable": True,
                    "portal_min_quantity": 1,
                    "portal_max_quantity": 10,
                }
            ),
            Command.create({"product_id": cls.product_support.id, "optional": True}),
        ]

    @classmethod
    def _portal_user(cls, login, company_partner):
        user = new_test_user(
            cls.env,
            login=login,
            groups="base.group_portal",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        user.partner_id.parent_id = company_partner
        return user

    @classmethod
    def _running_subscription(cls, partner, plan=None, seats=5, start=None):
        sub = cls.env["flex.subscription"].create(
            {
                "partner_id": partner.id,
                "plan_id": (plan or cls.plan_monthly).id,
                "company_id": cls.company.id,
                "start_date": start or cls.start,
                "line_ids": [
                    Command.create({"product_id": cls.product_seat.id, "quantity": seats})
                ],
            }
        )
        sub.action_confirm()
        with mute_logger("odoo.addons.subscription_flex"):
            sub._create_recurring_invoices(cls.today)
        return sub

    # ------------------------------------------------------------------ helpers

    def _period(self, sub=None):
        """The running month of a subscription started on ``self.start``: (start, end,
        days left from today, days in the period)."""
        start = self.start
        end = start + relativedelta(months=1)
        return start, end, (end - self.today).days, (end - start).days

    def _url(self, sub, action=""):
        return f"/my/subscriptions/{sub.id}" + (f"/{action}" if action else "")

    def _post(self, sub, action, csrf=True, **data):
        """POST as the form does: with the CSRF token, and on confirm with the preview key
        of the last preview shown (the hidden field of the confirm form)."""
        if csrf:
            data["csrf_token"] = self._csrf()
        if data.get("step") == "confirm":
            data.setdefault("preview_key", getattr(self, "_preview_key", ""))
        response = self.url_open(self._url(sub, action), data=data, allow_redirects=False)
        found = re.search(r'name="preview_key" value="([^"]*)"', response.text)
        if found:
            self._preview_key = html.unescape(found.group(1))
        return response

    def _csrf(self):
        from odoo.http import Request

        return Request.csrf_token(self)

    def _changes(self, sub):
        return self.env["flex.subscription.change"].search([("subscription_id", "=", sub.id)])

    def _seat_line(self, sub):
        return sub.line_ids.filtered(lambda line: line.product_id == self.product_seat)

    def _snapshot(self, sub):
        """What a refused request must leave as it was."""
        self.env.invalidate_all()
        return (
            sub.state,
            sub.plan_id,
            [(line.product_id.id, line.quantity) for line in sub.line_ids],
            self._changes(sub).ids,
            sub.invoice_ids.ids,
            sub.end_date,
        )

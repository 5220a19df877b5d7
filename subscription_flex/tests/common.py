from datetime import date

from odoo import Command
from odoo.tests import tagged

from odoo.addons.account.tests.common import AccountTestInvoicingCommon


@tagged("post_install", "-at_install")
class FlexCommon(AccountTestInvoicingCommon):
    """Own company (from the account test base), own 21% tax, products and plans."""

    @classmethod
    def get_default_groups(cls):
        # The account test base runs as an accountant: make it a subscription manager too.
        return super().get_default_groups() | cls.env.ref("subscription_flex.group_flex_manager")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.company_data["company"]
        cls.currency = cls.company.currency_id
        cls.tax_21 = cls.env["account.tax"].create(
            {
                "name": "VAT 21% (flex tests)",
                "amount": 21.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": cls.company.id,
            }
        )
        cls.product_seat = cls._create_product(
            name="Seat",
            lst_price=10.0,
            type="service",
            flex_is_subscription=True,
            taxes_id=[Command.set(cls.tax_21.ids)],
        )
        cls.product_support = cls._create_product(
            name="Support",
            lst_price=49.0,
            type="service",
            flex_is_subscription=True,
            taxes_id=[Command.set(cls.tax_21.ids)],
        )
        cls.plan_monthly = cls.env["flex.plan"].create(
            {
                "name": "Monthly",
                "billing_interval": 1,
                "billing_unit": "month",
                "invoicing_timing": "advance",
                "invoicing_mode": "post",
            }
        )
        cls.partner = cls.env["res.partner"].create({"name": "Flex Customer"})
        cls.Subscription = cls.env["flex.subscription"]

    @classmethod
    def _create_plan(cls, **vals):
        return cls.env["flex.plan"].create({"name": "Plan", **vals})

    @classmethod
    def _create_subscription(
        cls, plan=None, start=date(2026, 1, 1), lines=None, confirm=True, partner=None, **vals
    ):
        """``lines``: ``[(product, quantity, price_unit or None, discount)]``; a given
        price is an overridden price, ``None`` takes the plan's price version."""
        lines = lines if lines is not None else [(cls.product_seat, 3, 10.0, 0.0)]
        commands = []
        for product, quantity, price, discount in lines:
            line_vals = {"product_id": product.id, "quantity": quantity, "discount": discount}
            if price is not None:
                line_vals.update(price_unit=price, price_overridden=True)
            commands.append(Command.create(line_vals))
        sub = cls.Subscription.create(
            {
                "partner_id": (partner or cls.partner).id,
                "plan_id": (plan or cls.plan_monthly).id,
                "start_date": start,
                "line_ids": commands,
                **vals,
            }
        )
        if confirm:
            sub.action_confirm()
        return sub

    def _invoice(self, subs, today):
        return subs.with_context(flex_today=today)._create_recurring_invoices(today)

    def _run_cron(self, today, batch_size=100):
        """Run the cron callback until nothing is due, as Odoo's runner would."""
        Subscription = self.Subscription.with_context(flex_today=today)
        done = Subscription
        for _round in range(100):
            batch = Subscription._cron_create_invoices(batch_size=batch_size)
            if not batch:
                return done
            done |= batch
        raise AssertionError("the invoicing cron did not finish in 100 rounds")

    def _recurring_invoices(self, subs):
        return self.env["account.move"].search(
            [("flex_subscription_id", "in", subs.ids), ("flex_billing_kind", "=", "recurring")],
            order="flex_subscription_id, flex_period_start",
        )

from collections import defaultdict

from odoo import api, fields, models


class FlexPrice(models.Model):
    """A price version: the unit price of a product in a plan and currency from a date on.

    Versions are never edited in place once used: a price change is a new version with a
    later ``date_start``, so it can be scheduled ahead and subscriptions that are
    grandfathered keep the price they had.
    """

    _name = "flex.price"
    _description = "Subscription Price Version"
    _order = "plan_id, product_id, currency_id, date_start desc, id desc"
    _check_company_auto = True

    plan_id = fields.Many2one("flex.plan", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="plan_id.company_id", store=True)
    product_id = fields.Many2one(
        "product.product",
        required=True,
        index=True,
        domain="[('flex_is_subscription', '=', True)]",
    )
    currency_id = fields.Many2one(
        "res.currency", required=True, default=lambda self: self.env.company.currency_id
    )
    date_start = fields.Date(
        string="Valid From", required=True, default=fields.Date.context_today
    )
    price_unit = fields.Monetary(
        string="Unit Price", required=True, currency_field="currency_id"
    )

    _sql_constraints = [
        (
            "version_unique",
            "UNIQUE(plan_id, product_id, currency_id, date_start)",
            "There is already a price for this plan, product and currency from that date.",
        ),
        ("price_not_negative", "CHECK(price_unit >= 0)", "A price cannot be negative."),
    ]

    @api.depends("plan_id", "product_id", "date_start", "currency_id")
    def _compute_display_name(self):
        for price in self:
            price.display_name = self.env._(
                "%(product)s (%(plan)s) from %(date)s",
                product=price.product_id.display_name,
                plan=price.plan_id.display_name,
                date=price.date_start,
            )

    @api.model
    def _get_price_map(self, requests):
        """Unit prices for many ``(plan_id, product_id, currency_id, date)`` at once.

        One query for the whole batch (the invoicing cron asks for every line of every
        subscription it invoices). Returns ``{request: price_unit or None}``; ``None``
        means no version is valid on that date.
        """
        if not requests:
            return {}
        plans = {r[0] for r in requests}
        products = {r[1] for r in requests}
        latest = max(r[3] for r in requests)
        rows = self.sudo().search_fetch(
            [
                ("plan_id", "in", list(plans)),
                ("product_id", "in", list(products)),
                ("date_start", "<=", latest),
            ],
            ["plan_id", "product_id", "currency_id", "date_start", "price_unit"],
            order="date_start desc, id desc",
        )
        versions = defaultdict(list)  # newest first
        for row in rows:
            key = (row.plan_id.id, row.product_id.id, row.currency_id.id)
            versions[key].append((row.date_start, row.price_unit))
        result = {}
        for request in requests:
            result[request] = next(
                (price for start, price in versions[request[:3]] if start <= request[3]),
                None,
            )
        return result

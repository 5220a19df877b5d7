from collections import defaultdict
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import float_round

from ..core import rating


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
    date_start = fields.Date(string="Valid From", required=True, default=fields.Date.context_today)
    price_unit = fields.Float(
        string="Unit Price",
        required=True,
        digits="Subscription Unit Price",
        help="Recurring products: the price of one unit per period. Metered products: the "
        "price of one unit (per unit), of one package (package).",
    )
    product_metered = fields.Boolean(related="product_id.flex_metered")
    pricing_model = fields.Selection(
        [
            ("per_unit", "Per unit"),
            ("package", "Per package"),
            ("graduated", "Graduated tiers"),
            ("volume", "Volume tiers"),
        ],
        default="per_unit",
        required=True,
        help="Metered products only. Graduated: each tier prices the units that fall in it. "
        "Volume: all units at the price of the tier the total falls in.",
    )
    package_size = fields.Float(default=1.0, digits="Product Unit of Measure")
    included_quantity = fields.Float(
        digits="Product Unit of Measure",
        help="Free allowance per period, deducted before pricing.",
    )
    minimum_charge = fields.Monetary(
        currency_field="currency_id", help="Charged when the period's usage costs less."
    )
    tier_ids = fields.One2many("flex.price.tier", "price_id", string="Tiers", copy=True)

    _sql_constraints = [
        (
            "version_unique",
            "UNIQUE(plan_id, product_id, currency_id, date_start)",
            "There is already a price for this plan, product and currency from that date.",
        ),
        ("price_not_negative", "CHECK(price_unit >= 0)", "A price cannot be negative."),
        ("package_positive", "CHECK(package_size > 0)", "A package size must be positive."),
        (
            "usage_terms_not_negative",
            "CHECK(included_quantity >= 0 AND minimum_charge >= 0)",
            "Included quantities and minimum charges cannot be negative.",
        ),
    ]

    @api.constrains("price_unit", "product_id")
    def _check_price_precision(self):
        """A recurring price is billed on an invoice line, whose unit price has the
        "Product Price" precision: a price with more decimals would be billed rounded,
        and no longer agree with the proration of the same line."""
        digits = self.env["decimal.precision"].precision_get("Product Price")
        for price in self:
            if price.product_id.flex_metered:
                continue  # rated from usage: the line bills the rated amount
            if float_round(price.price_unit, precision_digits=digits) != price.price_unit:
                raise ValidationError(
                    self.env._(
                        "The price %(price)s of %(product)s has more decimals than invoices "
                        'carry (%(digits)s, the "Product Price" precision): it would be '
                        "billed rounded. Raise that precision (Settings ▸ Technical ▸ "
                        "Decimal Accuracy) or round the price.",
                        price=price.price_unit,
                        product=price.product_id.display_name,
                        digits=digits,
                    )
                )

    @api.constrains("pricing_model", "tier_ids")
    def _check_tiers(self):
        for price in self:
            if price.pricing_model not in ("graduated", "volume"):
                continue
            try:
                rating.rate(0, price.pricing_model, tiers=price._get_tiers())
            except ValueError:
                raise ValidationError(
                    self.env._(
                        "The tiers of %(price)s must have increasing bounds, and only the last "
                        "one may be open-ended.",
                        price=price.display_name,
                    )
                )

    def _get_tiers(self):
        self.ensure_one()
        return [
            rating.Tier(
                None if tier.open_ended else Decimal(repr(tier.up_to)),
                Decimal(repr(tier.unit_price)),
                Decimal(repr(tier.flat_fee)),
            )
            for tier in self.tier_ids.sorted(lambda t: (t.open_ended, t.up_to, t.id))
        ]

    @api.model
    def _usage_quantity_digits(self):
        """Decimals of a usage quantity as rated and invoiced: those an invoice line's
        quantity carries (Odoo rounds it to *Product Unit of Measure*)."""
        return self.env["decimal.precision"].precision_get("Product Unit of Measure")

    def _rate(self, quantity):
        """:class:`core.rating.Rating` of ``quantity`` units with this version's terms,
        the quantity rounded first to the precision of an invoice line's quantity."""
        self.ensure_one()
        return rating.rate(
            quantity,
            self.pricing_model,
            unit_price=Decimal(repr(self.price_unit)),
            decimals=self.currency_id.decimal_places,
            package_size=self.package_size,
            tiers=self._get_tiers() if self.pricing_model in ("graduated", "volume") else (),
            included=self.included_quantity,
            minimum=self.minimum_charge,
            quantity_decimals=self._usage_quantity_digits(),
        )

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
    def _get_version_map(self, requests):
        """Price versions for many ``(plan_id, product_id, currency_id, date)`` at once.

        One query for the whole batch (the invoicing cron asks for every line of every
        subscription it invoices). Returns ``{request: flex.price}``, an empty record
        when no version is valid on that date.
        """
        if not requests:
            return {}
        rows = self.sudo().search_fetch(
            [
                ("plan_id", "in", list({r[0] for r in requests})),
                ("product_id", "in", list({r[1] for r in requests})),
                ("date_start", "<=", max(r[3] for r in requests)),
            ],
            ["plan_id", "product_id", "currency_id", "date_start", "price_unit"],
            order="date_start desc, id desc",
        )
        versions = defaultdict(list)  # newest first
        for row in rows:
            versions[(row.plan_id.id, row.product_id.id, row.currency_id.id)].append(row)
        empty = self.browse()
        return {
            request: next((v for v in versions[request[:3]] if v.date_start <= request[3]), empty)
            for request in requests
        }

    @api.model
    def _get_price_map(self, requests):
        """Unit prices of :meth:`_get_version_map`: ``{request: price_unit or None}``;
        ``None`` means no version is valid on that date."""
        return {
            request: version.price_unit if version else None
            for request, version in self._get_version_map(requests).items()
        }

    @api.model
    def _get_unit_price(self, plan, product, currency, company, day):
        """Unit price of ``product`` in ``plan`` on ``day``, in ``currency``: the version
        valid that day, else the product's sales price converted from ``company``'s
        currency."""
        key = (plan.id, product.id, currency.id, day)
        price = self._get_price_map([key])[key]
        if price is None:
            price = company.currency_id._convert(product.lst_price, currency, company, day)
        return price

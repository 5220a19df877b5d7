from odoo import fields, models

from .sale_order import ORDER_KINDS


class SaleReport(models.Model):
    _inherit = "sale.report"

    flex_order_kind = fields.Selection(ORDER_KINDS, string="Subscription Sale", readonly=True)
    flex_mrr = fields.Monetary(
        string="MRR Sold",
        readonly=True,
        help="Monthly recurring revenue added: new subscriptions in full, upsells and "
        "renewals by the difference they make (in the company's currency).",
    )

    def _select_additional_fields(self):
        res = super()._select_additional_fields()
        # Converted like the report's other amounts (order rate, then company table).
        res["flex_mrr"] = f"""SUM(l.flex_mrr
                / {self._case_value_or_one("s.currency_rate")}
                * {self._case_value_or_one("account_currency_table.rate")})"""
        res["flex_order_kind"] = "s.flex_order_kind"
        return res

    def _group_by_sale(self):
        return f"{super()._group_by_sale()},\n            s.flex_order_kind"

from odoo import models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"

    def _invoice_sale_orders(self):
        """Sales' *automatic invoice* sets the transaction's invoices to those it made
        for the paid orders: none for lines the subscription bills. The subscription's
        invoices of the order are then the transaction's again."""
        res = super()._invoice_sale_orders()
        for tx in self:
            for order in tx.sale_order_ids.filtered(lambda order: order.state == "sale"):
                order._flex_link_paid_transactions()
        return res

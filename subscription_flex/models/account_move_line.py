from odoo import Command, api, fields, models


class AccountMoveLine(models.Model):
    _inherit = "account.move.line"

    flex_subscription_line_id = fields.Many2one(
        "flex.subscription.line",
        string="Subscription Line",
        index="btree_not_null",
        copy=False,
        readonly=True,
    )
    flex_line_kind = fields.Selection(
        [("recurring", "Recurring"), ("usage", "Usage"), ("proration", "Proration")],
        copy=False,
        readonly=True,
        string="Subscription Line Kind",
    )
    flex_change_item_id = fields.Many2one(
        "flex.subscription.change.item",
        string="Subscription Change",
        index="btree_not_null",
        copy=False,
        readonly=True,
        ondelete="set null",
    )
    flex_period_start = fields.Date(string="Service From", copy=False)
    flex_period_end = fields.Date(string="Service To", copy=False)

    @api.ondelete(at_uninstall=False)
    def _unlink_release_usage(self):
        """Usage billed by a deleted line is pending again: the next invoice bills it."""
        usage_lines = self.filtered(lambda line: line.flex_line_kind == "usage")
        if usage_lines:
            self.env["flex.subscription"]._release_usage(usage_lines)

    def unlink(self):
        items = self.flex_change_item_id
        result = super().unlink()
        if items:
            # Proration billed by a deleted line is owed again.
            items.invalidate_recordset(["move_line_ids"])
            items.exists()._sync_state()
        return result

    def _flex_link_sale_lines(self):
        """Show subscription invoices on the sales order lines they bill: the first
        invoice of a subscription line sold on an order, and the proration items of an
        upsell quotation (on the change's document or on the next invoice)."""
        # sudo: the invoicing cron's user may not read sales orders.
        SaleLine = self.env["sale.order.line"].sudo()
        by_item = {line.flex_change_item_id.id: line for line in self if line.flex_change_item_id}
        if by_item:
            for sale_line in SaleLine.search([("flex_change_item_id", "in", list(by_item))]):
                sale_line.invoice_lines = [
                    Command.link(by_item[sale_line.flex_change_item_id.id].id)
                ]
        recurring = {}
        for line in self.sorted("flex_period_start"):
            if line.flex_line_kind == "recurring" and line.flex_subscription_line_id:
                recurring.setdefault(line.flex_subscription_line_id.id, line)
        if recurring:
            for sale_line in SaleLine.search(
                [
                    ("flex_subscription_line_id", "in", list(recurring)),
                    ("invoice_lines", "=", False),
                ]
            ):
                sale_line.invoice_lines = [
                    Command.link(recurring[sale_line.flex_subscription_line_id.id].id)
                ]

from odoo import api, fields, models


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

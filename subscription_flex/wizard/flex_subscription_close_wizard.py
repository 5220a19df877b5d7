from odoo import api, fields, models


class FlexSubscriptionCloseWizard(models.TransientModel):
    _name = "flex.subscription.close.wizard"
    _description = "Cancel a Subscription"

    subscription_id = fields.Many2one("flex.subscription", required=True)
    close_reason_id = fields.Many2one("flex.close.reason", string="Reason", required=True)
    note = fields.Text()
    requested_date = fields.Date(
        string="End On", help="Leave empty for the earliest date the rules allow."
    )
    earliest_end_date = fields.Date(compute="_compute_earliest_end_date")
    end_rule = fields.Char(related="subscription_id.end_rule")

    @api.depends("subscription_id")
    def _compute_earliest_end_date(self):
        for wizard in self:
            wizard.earliest_end_date = wizard.subscription_id.earliest_end_date

    def action_confirm(self):
        self.ensure_one()
        self.subscription_id.action_request_close(
            reason=self.close_reason_id,
            requested_date=self.requested_date,
            note=self.note,
        )
        return {"type": "ir.actions.act_window_close"}

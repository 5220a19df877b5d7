from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    flex_subscription_ids = fields.One2many("flex.subscription", "partner_id")
    flex_subscription_count = fields.Integer(
        string="Subscriptions", compute="_compute_flex_subscription_count"
    )

    def _compute_flex_subscription_count(self):
        Subscription = self.env["flex.subscription"]
        if not Subscription.has_access("read"):
            self.flex_subscription_count = 0
            return
        # Count the subscriptions of the whole company (contacts included), like invoices.
        groups = Subscription._read_group(
            [("commercial_partner_id", "in", self.commercial_partner_id.ids)],
            ["commercial_partner_id"],
            ["__count"],
        )
        counts = {partner.id: count for partner, count in groups}
        for partner in self:
            partner.flex_subscription_count = counts.get(partner.commercial_partner_id.id, 0)

    def action_view_flex_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_action"
        )
        action["domain"] = [("commercial_partner_id", "=", self.commercial_partner_id.id)]
        action["context"] = {"default_partner_id": self.id}
        return action

"""Bulk move of subscriptions to a new plan (a new version of a package), with the MRR
impact shown before anything is scheduled."""

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import format_date


class FlexPlanMigration(models.TransientModel):
    _name = "flex.plan.migration"
    _description = "Move Subscriptions to Another Plan"

    subscription_ids = fields.Many2many(
        "flex.subscription",
        string="Subscriptions",
        default=lambda self: self._default_subscriptions(),
    )
    new_plan_id = fields.Many2one("flex.plan", string="Move To", required=True)
    date_from = fields.Date(
        string="From",
        required=True,
        default=fields.Date.context_today,
        help="Each subscription moves at the start of its first billing period on or after "
        "this day: no proration.",
    )
    include_grandfathered = fields.Boolean(
        help="Grandfathered subscriptions keep their terms unless this is ticked."
    )
    company_currency_id = fields.Many2one(
        "res.currency", default=lambda self: self.env.company.currency_id
    )
    mrr_before = fields.Monetary(
        compute="_compute_preview", currency_field="company_currency_id", string="MRR Before"
    )
    mrr_after = fields.Monetary(
        compute="_compute_preview", currency_field="company_currency_id", string="MRR After"
    )
    mrr_delta = fields.Monetary(
        compute="_compute_preview", currency_field="company_currency_id", string="MRR Change"
    )
    moved_count = fields.Integer(compute="_compute_preview")
    preview_html = fields.Html(compute="_compute_preview", sanitize=False)

    def _default_subscriptions(self):
        if self.env.context.get("active_model") == "flex.subscription":
            return [fields.Command.set(self.env.context.get("active_ids", []))]
        return []

    def _rows(self):
        """One row per subscription: ``(sub, effective_date, preview or None, why)``."""
        self.ensure_one()
        rows = []
        Change = self.env["flex.subscription.change"]
        for sub in self.subscription_ids:
            why = None
            if sub.plan_id == self.new_plan_id:
                why = self.env._("already on this plan")
            elif sub.grandfathered and not self.include_grandfathered:
                why = self.env._("grandfathered")
            elif sub.state not in ("trial", "active", "to_close"):
                why = self.env._("not running")
            if why:
                rows.append((sub, None, None, why))
                continue
            day = sub._next_boundary(self.date_from)
            change = Change.new(sub._migration_change_vals(self.new_plan_id, day))
            try:
                preview = change._get_preview()
            except (UserError, ValidationError) as error:
                rows.append((sub, day, None, error.args[0]))
                continue
            rows.append((sub, preview["effective_date"], preview, None))
        return rows

    @api.depends("subscription_ids", "new_plan_id", "date_from", "include_grandfathered")
    def _compute_preview(self):
        for wizard in self:
            if not wizard.new_plan_id:
                wizard.update(
                    mrr_before=0, mrr_after=0, mrr_delta=0, moved_count=0, preview_html=False
                )
                continue
            rows = wizard._rows()
            currency = wizard.company_currency_id
            today = fields.Date.context_today(wizard)

            def to_company(amount, sub, currency=currency, today=today):
                return sub.currency_id._convert(
                    float(amount), currency, sub.company_id, today, round=False
                )

            moved = [row for row in rows if row[2]]
            before = sum(to_company(row[2]["mrr_before"], row[0]) for row in moved)
            after = sum(to_company(row[2]["mrr_after"], row[0]) for row in moved)
            wizard.mrr_before = currency.round(before)
            wizard.mrr_after = currency.round(after)
            wizard.mrr_delta = currency.round(after - before)
            wizard.moved_count = len(moved)
            wizard.preview_html = self.env["ir.qweb"]._render(
                "subscription_flex.plan_migration_preview",
                {"rows": rows, "format_date": format_date},
            )

    def action_confirm(self):
        """Schedule (or apply, when due today) one plan change per subscription."""
        self.ensure_one()
        rows = [row for row in self._rows() if row[2]]
        if not rows:
            raise UserError(self.env._("None of these subscriptions can move to this plan."))
        changes = self.env["flex.subscription.change"].create(
            [sub._migration_change_vals(self.new_plan_id, day) for sub, day, _p, _w in rows]
        )
        changes.action_confirm()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_change_action"
        )
        action["domain"] = [("id", "in", changes.ids)]
        action["context"] = {}
        return action

from odoo import api, fields, models

from ..core.periods import UNITS

PERIOD_UNITS = [
    ("day", "Days"),
    ("week", "Weeks"),
    ("month", "Months"),
    ("year", "Years"),
]
assert tuple(key for key, _label in PERIOD_UNITS) == UNITS

MONTHS_PER_UNIT = {"day": 12 / 365.25, "week": 12 / 52.1775, "month": 1, "year": 12}


class FlexPlan(models.Model):
    _name = "flex.plan"
    _description = "Subscription Plan"
    _order = "sequence, name, id"
    _check_company_auto = True

    name = fields.Char(required=True, translate=True)
    code = fields.Char(help="Short reference shown on subscriptions and invoices.")
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    description = fields.Html(translate=True)
    company_id = fields.Many2one(
        "res.company",
        help="Leave empty to share the plan between companies.",
    )
    billing_interval = fields.Integer(string="Bill Every", default=1, required=True)
    billing_unit = fields.Selection(PERIOD_UNITS, default="month", required=True)
    invoicing_timing = fields.Selection(
        [("advance", "In advance"), ("arrears", "In arrears")],
        default="advance",
        required=True,
        help="In advance: a period is invoiced on its first day. "
        "In arrears: the day after it ends.",
    )
    trial_length = fields.Integer(default=0)
    trial_unit = fields.Selection(PERIOD_UNITS, default="day", required=True)
    term_type = fields.Selection(
        [("evergreen", "Evergreen"), ("fixed", "Fixed term")],
        default="evergreen",
        required=True,
        help="Evergreen subscriptions run until they are cancelled; fixed-term "
        "subscriptions end (or renew) at the end of their term.",
    )
    term_length = fields.Integer(default=12)
    term_unit = fields.Selection(PERIOD_UNITS, default="month", required=True)
    auto_renew = fields.Boolean(
        default=True, help="Fixed terms renew for another term at their end."
    )
    commitment_length = fields.Integer(
        string="Minimum Term",
        default=0,
        help="The subscription cannot end before start date + minimum term.",
    )
    commitment_unit = fields.Selection(PERIOD_UNITS, default="month", required=True)
    notice_length = fields.Integer(
        string="Notice Period",
        default=0,
        help="A cancellation takes effect no earlier than request date + notice.",
    )
    notice_unit = fields.Selection(PERIOD_UNITS, default="day", required=True)
    invoicing_mode = fields.Selection(
        [
            ("draft", "Create drafts"),
            ("post", "Post"),
            ("send", "Post and send"),
        ],
        default="post",
        required=True,
    )
    proration_mode = fields.Selection(
        [
            ("invoice", "Invoice now"),
            ("next_invoice", "Add to the next invoice"),
            ("none", "No proration (next period)"),
        ],
        default="invoice",
        required=True,
        help="Mid-period changes. Invoice now: the prorated difference is invoiced (or "
        "credited) on the day of the change. Next invoice: it is added to the next "
        "recurring invoice. No proration: the change takes effect at the next period.",
    )
    downgrade_timing = fields.Selection(
        [("immediate", "Immediately, with credit"), ("period_end", "At the end of the period")],
        default="immediate",
        required=True,
        help="When a change that lowers the recurring amount takes effect.",
    )
    period_decrease_timing = fields.Selection(
        [("period_end", "At the end of the period"), ("immediate", "Immediately, with credit")],
        string="Switch to a Shorter Period",
        default="period_end",
        required=True,
        help="When a switch to a plan with a shorter billing period (yearly to monthly) "
        "takes effect. A switch to a longer period always starts a new period at once.",
    )
    renewal_quotation_days = fields.Integer(
        string="Renewal Quotation (days ahead)",
        help="Fixed terms: a renewal quotation is made this many days before the term ends "
        "(0: only with the button).",
    )
    journal_id = fields.Many2one(
        "account.journal",
        domain="[('type', '=', 'sale')]",
        check_company=True,
        help="Sales journal of the invoices; the company's default sales journal when empty.",
    )
    line_ids = fields.One2many("flex.plan.line", "plan_id", string="Template Lines", copy=True)
    price_ids = fields.One2many("flex.price", "plan_id", string="Price Versions", copy=True)
    subscription_ids = fields.One2many("flex.subscription", "plan_id")
    reminder_rule_ids = fields.One2many(
        "flex.reminder.rule",
        "plan_id",
        string="Reminders",
        copy=True,
        context={"active_test": False},
    )
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    period_label = fields.Char(compute="_compute_period_label")

    _sql_constraints = [
        (
            "billing_interval_positive",
            "CHECK(billing_interval > 0)",
            "The billing interval must be at least 1.",
        ),
        (
            "lengths_not_negative",
            "CHECK(trial_length >= 0 AND term_length >= 0 AND commitment_length >= 0 "
            "AND notice_length >= 0)",
            "Trial, term, minimum term and notice cannot be negative.",
        ),
    ]

    @api.model_create_multi
    def create(self, vals_list):
        plans = super().create(vals_list)
        Rule = self.env["flex.reminder.rule"]
        rules = []
        for plan, vals in zip(plans, vals_list, strict=True):
            if "reminder_rule_ids" not in vals:  # copies bring their own
                rules += Rule._default_rules_vals(plan)
        Rule.create(rules)
        return plans

    @api.depends("subscription_ids")
    def _compute_subscription_count(self):
        counts = dict(
            self.env["flex.subscription"]._read_group(
                [("plan_id", "in", self.ids)], ["plan_id"], ["__count"]
            )
        )
        for plan in self:
            plan.subscription_count = counts.get(plan, 0)

    @api.depends("billing_interval", "billing_unit")
    def _compute_period_label(self):
        env = self.env
        single = {
            "day": env._("Daily"),
            "week": env._("Weekly"),
            "month": env._("Monthly"),
            "year": env._("Yearly"),
        }
        plural = {
            "day": env._("days"),
            "week": env._("weeks"),
            "month": env._("months"),
            "year": env._("years"),
        }
        for plan in self:
            if plan.billing_interval == 1:
                plan.period_label = single.get(plan.billing_unit)
            else:
                plan.period_label = env._(
                    "Every %(count)s %(unit)s",
                    count=plan.billing_interval,
                    unit=plural.get(plan.billing_unit, ""),
                )

    @api.constrains("term_type", "term_length")
    def _check_term(self):
        for plan in self:
            if plan.term_type == "fixed" and plan.term_length <= 0:
                raise models.ValidationError(
                    self.env._(
                        "A fixed-term plan needs a term length (plan %(plan)s).",
                        plan=plan.display_name,
                    )
                )

    def months_per_period(self):
        """Length of one billing period in months (for MRR normalisation)."""
        self.ensure_one()
        return self.billing_interval * MONTHS_PER_UNIT[self.billing_unit]

    def action_view_subscriptions(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_subscription_action"
        )
        action["domain"] = [("plan_id", "=", self.id)]
        action["context"] = {"default_plan_id": self.id}
        return action

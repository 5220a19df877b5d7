"""MRR movements: every change of a subscription's monthly recurring revenue, dated.

A subscription's MRR is its recurring lines (discounts included, usage excluded) normalised
to a month, counted while it is *active* or *to close* (not in trial, not paused). Each
time it changes, one movement records the difference, classified as *new* (first MRR),
*reactivation* (MRR again after dropping to zero: resumed, restarted), *expansion*,
*contraction* or *churn* (to zero: closed, paused). Movements are the only source of the
reports, so they reconcile by construction: MRR at the end of a month = MRR at its start +
the month's movements.
"""

from odoo import api, fields, models, tools
from odoo.tools import SQL

MOVEMENT_KINDS = [
    ("new", "New"),
    ("expansion", "Expansion"),
    ("contraction", "Contraction"),
    ("churn", "Churn"),
    ("reactivation", "Reactivation"),
]


class FlexMrrMovement(models.Model):
    _name = "flex.mrr.movement"
    _description = "MRR Movement"
    _order = "date desc, id desc"
    _rec_name = "subscription_id"

    date = fields.Date(required=True, index=True)
    subscription_id = fields.Many2one(
        "flex.subscription", required=True, ondelete="cascade", index=True
    )
    partner_id = fields.Many2one("res.partner", string="Customer", index=True)
    plan_id = fields.Many2one("flex.plan", index=True)
    user_id = fields.Many2one("res.users", string="Salesperson")
    company_id = fields.Many2one("res.company", required=True, index=True)
    currency_id = fields.Many2one(related="company_id.currency_id", string="Currency")
    kind = fields.Selection(MOVEMENT_KINDS, required=True, index=True)
    mrr_before = fields.Monetary(string="MRR Before")
    mrr_after = fields.Monetary(string="MRR After")
    amount = fields.Monetary(string="MRR Change", help="In the company's currency.")
    subscription_count = fields.Integer(
        string="Paying Subscriptions Change",
        help="+1 when a subscription starts paying (new, reactivation), -1 when it stops.",
    )
    close_reason_id = fields.Many2one("flex.close.reason")
    change_id = fields.Many2one("flex.subscription.change", ondelete="set null")


class FlexSubscription(models.Model):
    _inherit = "flex.subscription"  # pylint: disable=consider-merging-classes-inherited

    mrr_recorded = fields.Monetary(
        string="MRR Recorded", copy=False, readonly=True, help="MRR of the last movement."
    )
    mrr_movement_ids = fields.One2many("flex.mrr.movement", "subscription_id")
    arr = fields.Monetary(string="ARR", compute="_compute_arr", store=True)
    usage_revenue = fields.Monetary(
        string="Usage Revenue (monthly)",
        compute="_compute_usage_revenue",
        help="Usage billed over the last three months, per month (not in the MRR).",
    )

    @api.depends("mrr")
    def _compute_arr(self):
        for sub in self:
            sub.arr = sub.mrr * 12

    @api.depends_context("flex_today")
    def _compute_usage_revenue(self):
        today = self._today()
        since = fields.Date.subtract(today, months=3)
        lines = (
            self.env["account.move.line"]
            .sudo()
            .search_fetch(
                [
                    ("move_id.flex_subscription_id", "in", self.ids),
                    ("flex_line_kind", "=", "usage"),
                    ("parent_state", "=", "posted"),
                    ("date", ">", since),
                    ("date", "<=", today),
                ],
                ["move_id", "price_subtotal"],
            )
        )
        rows = {}
        for line in lines:
            sub = line.move_id.flex_subscription_id
            rows[sub] = rows.get(sub, 0.0) + line.price_subtotal  # the invoice's currency
        for sub in self:
            sub.usage_revenue = sub.currency_id.round(rows.get(sub, 0.0) / 3)

    def write(self, vals):
        result = super().write(vals)
        if {"state", "plan_id"} & vals.keys() and not self.env.context.get("flex_mrr_defer"):
            day = self.env.context.get("flex_mrr_day") or self._today()
            self._record_mrr(fields.Date.to_date(day))
        return result

    def _record_mrr(self, day, change=None):
        """One movement per subscription whose MRR moved since the last one."""
        vals_list = []
        for sub in self:
            old, new = sub.mrr_recorded, sub.mrr
            currency = sub.currency_id
            if not currency.compare_amounts(old, new):
                continue
            started = bool(sub.mrr_movement_ids)
            if not old:
                kind, count = ("reactivation" if started else "new"), 1
            elif not new:
                kind, count = "churn", -1
            else:
                kind, count = ("expansion" if new > old else "contraction"), 0
            company = sub.company_id
            company_currency = company.currency_id

            def convert(amount, sub_currency=currency, company=company, to=company_currency):
                return sub_currency._convert(amount, to, company, day)

            vals_list.append(
                {
                    "date": day,
                    "subscription_id": sub.id,
                    "partner_id": sub.commercial_partner_id.id,
                    "plan_id": sub.plan_id.id,
                    "user_id": sub.user_id.id,
                    "company_id": company.id,
                    "kind": kind,
                    "mrr_before": convert(old),
                    "mrr_after": convert(new),
                    "amount": convert(new) - convert(old),
                    "subscription_count": count,
                    "close_reason_id": sub.close_reason_id.id if kind == "churn" else False,
                    "change_id": change.id if change else False,
                }
            )
            sub.write({"mrr_recorded": new})
        return self.env["flex.mrr.movement"].sudo().create(vals_list)

    @api.model
    def _cron_sync_mrr(self):
        """Safety net: MRR that moved outside the flows that record it (a script, an
        import) is recorded today."""
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT id FROM flex_subscription WHERE mrr IS DISTINCT FROM mrr_recorded "
            "AND NOT (COALESCE(mrr, 0) = 0 AND COALESCE(mrr_recorded, 0) = 0)"
        )
        subs = self.sudo().browse([row[0] for row in self.env.cr.fetchall()])  # every company
        return subs._record_mrr(self._today())


class FlexMrrMonth(models.Model):
    """Month by month: MRR at the start, its movements, MRR at the end (SQL view)."""

    _name = "flex.mrr.month"
    _description = "MRR by Month"
    _auto = False
    _order = "month desc, company_id"
    _depends = {
        "flex.mrr.movement": ["date", "amount", "kind", "company_id", "subscription_count"],
        "account.move.line": ["flex_line_kind", "parent_state", "balance", "date", "company_id"],
    }

    month = fields.Date(readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    mrr_start = fields.Monetary(string="MRR at Start", readonly=True)
    new_mrr = fields.Monetary(string="New", readonly=True)
    expansion = fields.Monetary(readonly=True)
    contraction = fields.Monetary(readonly=True)
    churn = fields.Monetary(readonly=True)
    reactivation = fields.Monetary(readonly=True)
    mrr_end = fields.Monetary(string="MRR at End", readonly=True)
    arr_end = fields.Monetary(string="ARR at End", readonly=True)
    churn_rate = fields.Float(
        string="MRR Churn (%)", readonly=True, aggregator="avg", help="Churned MRR / MRR at start."
    )
    subscriptions_start = fields.Integer(string="Paying at Start", readonly=True)
    subscriptions_end = fields.Integer(string="Paying at End", readonly=True)
    churned = fields.Integer(string="Churned Subscriptions", readonly=True)
    usage_revenue = fields.Monetary(readonly=True, help="Usage billed in the month.")

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            SQL(
                """
            CREATE VIEW %s AS (
                WITH bounds AS (
                    SELECT company_id, date_trunc('month', min(date))::date AS first,
                           date_trunc('month', greatest(max(date), now()::date))::date AS last
                      FROM flex_mrr_movement GROUP BY company_id
                ), months AS (
                    SELECT b.company_id, generate_series(b.first, b.last, '1 month')::date AS month
                      FROM bounds b
                ), flows AS (
                    SELECT mo.company_id, mo.month,
                           COALESCE(sum(m.amount) FILTER (WHERE m.kind = 'new'), 0) AS new_mrr,
                           COALESCE(sum(m.amount) FILTER (WHERE m.kind = 'expansion'), 0)
                               AS expansion,
                           -COALESCE(sum(m.amount) FILTER (WHERE m.kind = 'contraction'), 0)
                               AS contraction,
                           -COALESCE(sum(m.amount) FILTER (WHERE m.kind = 'churn'), 0) AS churn,
                           COALESCE(sum(m.amount) FILTER (WHERE m.kind = 'reactivation'), 0)
                               AS reactivation,
                           COALESCE(sum(m.amount), 0) AS delta,
                           COALESCE(sum(m.subscription_count), 0) AS count_delta,
                           count(m.id) FILTER (WHERE m.kind = 'churn') AS churned
                      FROM months mo
                      LEFT JOIN flex_mrr_movement m
                        ON m.company_id = mo.company_id AND m.date >= mo.month
                       AND m.date < (mo.month + interval '1 month')
                     GROUP BY mo.company_id, mo.month
                ), running AS (
                    SELECT f.*,
                           sum(delta) OVER w AS mrr_end,
                           sum(count_delta) OVER w AS subscriptions_end
                      FROM flows f
                    WINDOW w AS (PARTITION BY company_id ORDER BY month)
                ), usage AS (
                    SELECT l.company_id, date_trunc('month', l.date)::date AS month,
                           sum(-l.balance) AS amount
                      FROM account_move_line l
                     WHERE l.flex_line_kind = 'usage' AND l.parent_state = 'posted'
                     GROUP BY 1, 2
                )
                SELECT row_number() OVER (ORDER BY r.company_id, r.month) AS id,
                       r.company_id, c.currency_id, r.month,
                       r.mrr_end - r.delta AS mrr_start,
                       r.new_mrr, r.expansion, r.contraction, r.churn, r.reactivation,
                       r.mrr_end, r.mrr_end * 12 AS arr_end,
                       CASE WHEN r.mrr_end - r.delta > 0
                            THEN round(100 * r.churn / (r.mrr_end - r.delta), 2) ELSE 0 END
                           AS churn_rate,
                       (r.subscriptions_end - r.count_delta)::int AS subscriptions_start,
                       r.subscriptions_end::int AS subscriptions_end,
                       r.churned::int AS churned,
                       COALESCE(u.amount, 0) AS usage_revenue
                  FROM running r
                  JOIN res_company c ON c.id = r.company_id
                  LEFT JOIN usage u ON u.company_id = r.company_id AND u.month = r.month
            )
                """,
                SQL.identifier(self._table),
            )
        )

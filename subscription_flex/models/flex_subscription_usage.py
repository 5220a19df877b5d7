from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import Decimal

from markupsafe import Markup

from odoo import api, fields, models
from odoo.tools import format_date, formatLang

from ..core import periods as P
from ..core import rating
from ..core.money import round_money


def _day_start(day):
    """Usage periods are cut at midnight UTC (event times are stored in UTC)."""
    return datetime.combine(day, time.min)


class FlexSubscription(models.Model):
    """Usage billing: metered lines are rated in arrears on the next invoice.

    Each invoice bills the usage recorded from ``usage_billed_until`` (included) to its
    *cut* (excluded): the start of the invoiced period when billing in advance (so the
    invoice carries next period's base charges and last period's usage), its end when
    billing in arrears. Late events, whose time falls before ``usage_billed_until``, go
    on the next invoice, one line per original period and metric, labelled with it.
    """

    _inherit = "flex.subscription"  # pylint: disable=consider-merging-classes-inherited

    usage_billed_until = fields.Date(
        copy=False,
        readonly=True,
        help="Usage before this day has been invoiced (late events excepted).",
    )
    usage_ids = fields.One2many("flex.usage", "subscription_id")
    has_metered_lines = fields.Boolean(compute="_compute_has_metered_lines")
    usage_summary_html = fields.Html(
        compute="_compute_usage_summary_html", sanitize=False, string="Current Usage"
    )

    @api.depends("line_ids.product_id.flex_metered")
    def _compute_has_metered_lines(self):
        for sub in self:
            sub.has_metered_lines = any(sub.line_ids.product_id.mapped("flex_metered"))

    def _compute_usage_summary_html(self):
        for sub in self:
            rows = sub._get_usage_summary() if sub.id and sub.state not in ("draft",) else []
            if not rows:
                sub.usage_summary_html = False
                continue
            body = Markup("").join(
                Markup(
                    "<tr><td>{}</td><td class='text-end'>{}</td><td class='text-end'>{}</td>"
                    "<td class='text-end'>{}</td><td>{}</td></tr>"
                ).format(
                    row["product"].display_name,
                    f"{row['quantity']:f}",
                    f"{row['included_left']:f}",
                    formatLang(self.env, float(row["amount"]), currency_obj=sub.currency_id),
                    row["detail"],
                )
                for row in rows
            )
            head = Markup(
                "<p>{}</p><table class='table table-sm'><thead><tr><th>{}</th>"
                "<th class='text-end'>{}</th><th class='text-end'>{}</th>"
                "<th class='text-end'>{}</th><th>{}</th></tr></thead><tbody>"
            ).format(
                self.env._(
                    "From %(start)s to %(end)s (estimate, before taxes)",
                    start=format_date(self.env, rows[0]["period_start"]),
                    end=format_date(self.env, rows[0]["period_end"]),
                ),
                self.env._("Metric"),
                self.env._("Used"),
                self.env._("Included left"),
                self.env._("Amount so far"),
                self.env._("Detail"),
            )
            sub.usage_summary_html = head + body + Markup("</tbody></table>")

    def action_confirm(self):
        result = super().action_confirm()
        for sub in self:
            sub.usage_billed_until = sub.billing_anchor_date
        return result

    def action_view_usage(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "subscription_flex.flex_usage_action"
        )
        action["domain"] = [("subscription_id", "=", self.id)]
        action["context"] = {"default_subscription_id": self.id}
        return action

    # ----------------------------------------------------------------- rating

    def _needs_final_usage_invoice(self, today):
        """An ended subscription billed in advance still owes its last period's usage."""
        self.ensure_one()
        return bool(
            self.has_metered_lines
            and self.end_date
            and self.end_date <= today
            and self.usage_billed_until
            and self.usage_billed_until < self.end_date
            and self.plan_id.invoicing_timing == "advance"
            and self.state in ("active", "to_close")
            and not self._next_period()
        )

    def _advance_skipped_slots(self, slots):
        """Periods that had nothing to bill pass without an invoice."""
        self.ensure_one()
        vals = {}
        for period, kind in slots:
            cut = period.end if kind == "usage_final" else self._usage_cut(period)
            if kind == "recurring":
                vals["next_period_start"] = max(
                    vals.get("next_period_start", period.end), period.end
                )
            if self.has_metered_lines:
                vals["usage_billed_until"] = max(vals.get("usage_billed_until", cut), cut)
        if vals:
            self.write(vals)

    def _usage_cut(self, period):
        self.ensure_one()
        return period.start if self.plan_id.invoicing_timing == "advance" else period.end

    @api.model
    def _aggregate_usage(self, windows, states=("pending",)):
        """Aggregate pending usage per ``(window id, product)`` in one SQL query.

        ``windows``: ``{window_id: (subscription_id, start_date, end_date)}`` (end
        excluded). Returns ``{(window_id, product_id): {aggregation: Decimal}}`` with
        every aggregation computed, so the product's own choice is a dict lookup.
        """
        if not windows:
            return {}
        values = [
            (wid, sub_id, _day_start(start), _day_start(end))
            for wid, (sub_id, start, end) in windows.items()
        ]
        self.env.flush_all()
        # One grouped query instead of reading every event: a million events are
        # summed by PostgreSQL, not by Python.
        self.env.cr.execute(
            """
            WITH w(wid, sub_id, ws, we) AS (
                SELECT * FROM unnest(%s::int[], %s::int[], %s::timestamp[], %s::timestamp[])
            )
            SELECT w.wid, u.product_id,
                   sum(u.quantity), max(u.quantity), count(*),
                   count(DISTINCT u.unique_value),
                   (array_agg(u.quantity ORDER BY u.event_time DESC, u.id DESC))[1]
              FROM w
              JOIN flex_usage u
                ON u.subscription_id = w.sub_id
               AND u.event_time >= w.ws AND u.event_time < w.we
             WHERE u.state = ANY(%s)
             GROUP BY w.wid, u.product_id
            """,
            [*[list(column) for column in zip(*values, strict=True)], list(states)],
        )
        result = {}
        for wid, product_id, total, maximum, count, unique, last in self.env.cr.fetchall():
            result[(wid, product_id)] = {
                "sum": Decimal(repr(total)),
                "max": Decimal(repr(maximum)),
                "count": Decimal(count),
                "unique": Decimal(unique),
                "last": Decimal(repr(last)),
            }
        return result

    def _late_usage_windows(self):
        """Windows of the original periods of late events (pending, before the billed
        boundary), per subscription: ``{sub: [Period]}``. One query for all."""
        subs = self.filtered("usage_billed_until")
        if not subs:
            return {}
        self.env.flush_all()
        self.env.cr.execute(
            """
            SELECT u.subscription_id, array_agg(DISTINCT u.event_time::date)
              FROM flex_usage u
              JOIN flex_subscription s ON s.id = u.subscription_id
             WHERE u.subscription_id = ANY(%s) AND u.state = 'pending'
               AND u.event_time < s.usage_billed_until
             GROUP BY u.subscription_id
            """,
            [subs.ids],
        )
        result = {}
        for sub_id, days in self.env.cr.fetchall():
            sub = self.browse(sub_id)
            plan = sub.plan_id
            anchor = sub.billing_anchor_date
            windows = set()
            for day in days:
                if day < anchor:
                    # Usage of the trial is free: it is never billed.
                    windows.add(P.Period(sub.start_date, anchor))
                    continue
                period = P.period_containing(anchor, plan.billing_interval, plan.billing_unit, day)
                windows.add(P.Period(period.start, min(period.end, sub.usage_billed_until)))
            result[sub] = sorted(windows, key=lambda p: p.start)
        return result

    def _prepare_usage_lines(self, cuts, journal_for, accounts_for):
        """Usage invoice lines for every invoice about to be created.

        ``cuts``: ``{invoice_key: cut_date}``, ``invoice_key`` starting with the
        subscription, in chronological order per subscription. Returns ``{invoice_key:
        [line vals]}``; late events go on the first invoice of their subscription.
        """
        windows, owners = {}, {}
        free_windows = set()
        late = self._late_usage_windows()
        cuts_by_sub = defaultdict(list)
        for invoice_key, cut in cuts.items():
            cuts_by_sub[invoice_key[0]].append((invoice_key, cut))
        for sub, sub_cuts in cuts_by_sub.items():
            if not sub.has_metered_lines:
                continue
            start = sub.usage_billed_until or sub.billing_anchor_date
            # Late events go on the first invoice of the batch for this subscription.
            for late_period in late.get(sub, []):
                wid = len(windows)
                windows[wid] = (sub.id, late_period.start, late_period.end)
                owners[wid] = (sub, sub_cuts[0][0], late_period, True)
                if late_period.end <= sub.billing_anchor_date:
                    free_windows.add(wid)
            for invoice_key, cut in sub_cuts:
                if cut > start:
                    wid = len(windows)
                    windows[wid] = (sub.id, start, cut)
                    owners[wid] = (sub, invoice_key, P.Period(start, cut), False)
                    start = cut
        aggregates = self._aggregate_usage(windows)
        late_ids = {wid for wid, owner in owners.items() if owner[3] and wid not in free_windows}
        late_windows = {wid: windows[wid] for wid in late_ids}
        # A late event changes its period's total (and its tiers, maximum, unique
        # count...): re-rate the whole period and bill the difference.
        late_all = self._aggregate_usage(late_windows, ("pending", "invoiced"))
        late_billed = self._aggregate_usage(late_windows, ("invoiced",))
        prices = self._usage_prices(owners)
        result = defaultdict(list)
        for wid in sorted(windows):
            sub, invoice_key, window, is_late = owners[wid]
            for line in sub.line_ids.filtered(lambda line: line.product_id.flex_metered):
                product = line.product_id
                values = aggregates.get((wid, product.id))
                price = prices.get((sub.id, product.id, window.start))
                if wid in free_windows:
                    if values:
                        result[invoice_key].append(
                            sub._prepare_usage_line_vals(
                                line, window, None, Decimal(0), journal_for, accounts_for, free=True
                            )
                        )
                    continue
                if is_late:
                    if not values:
                        continue
                    agg = product.flex_aggregation
                    billed = late_billed.get((wid, product.id))
                    result[invoice_key].append(
                        sub._prepare_usage_line_vals(
                            line,
                            window,
                            price,
                            late_all[(wid, product.id)][agg],
                            journal_for,
                            accounts_for,
                            late=True,
                            billed_quantity=billed[agg] if billed else None,
                        )
                    )
                    continue
                quantity = values[product.flex_aggregation] if values else Decimal(0)
                if not values and not (price and price.minimum_charge):
                    continue
                result[invoice_key].append(
                    sub._prepare_usage_line_vals(
                        line, window, price, quantity, journal_for, accounts_for
                    )
                )
        return result

    def _usage_prices(self, owners):
        """``{(sub_id, product_id, window_start): flex.price}`` valid at each window start."""
        wanted = {
            (sub.id, sub.plan_id.id, line.product_id.id, sub.currency_id.id, window.start)
            for sub, _key, window, _late in owners.values()
            for line in sub.line_ids
            if line.product_id.flex_metered
        }
        versions = self.env["flex.price"]._get_version_map([w[1:] for w in wanted])
        return {(w[0], w[2], w[4]): versions[w[1:]] for w in wanted}

    def _prepare_usage_line_vals(
        self,
        line,
        window,
        price,
        quantity,
        journal_for,
        accounts_for,
        late=False,
        free=False,
        billed_quantity=None,
    ):
        self.ensure_one()
        product = line.product_id
        decimals = self.currency_id.decimal_places
        Price = self.env["flex.price"]
        if free or not price:
            rated = rating.rate(
                quantity, "per_unit", 0, decimals, quantity_decimals=Price._usage_quantity_digits()
            )
        else:
            rated = price._rate(quantity)
        included = price.included_quantity if price else 0
        detail = rating.describe(rated, included, product.flex_unit_label or "", decimals)
        already = None
        if late and price:
            # Without invoiced events the period was never rated: nothing to subtract.
            already = (
                price._rate(billed_quantity).amount if billed_quantity is not None else Decimal(0)
            )
            detail = self.env._(
                "%(detail)s, minus %(already)s already invoiced", detail=detail, already=already
            )
        if free:
            detail = self.env._("%(detail)s (trial, not billed)", detail=detail)
        elif not price:
            detail = self.env._("%(detail)s (no price for this period)", detail=detail)
        label = self.env._(
            "%(product)s%(late)s (%(start)s - %(end)s): %(detail)s",
            product=line.name or product.display_name,
            late=self.env._(", late usage") if late else "",
            start=format_date(self.env, window.start),
            end=format_date(self.env, window.end - timedelta(days=1)),
            detail=detail,
        )
        # The line is quantity × unit price when that is its amount (one part, per unit or
        # volume, no flat fee, no minimum) and the invoice line holds both to their last
        # digit; otherwise one unit at the amount, the rule in the label (the quantity
        # rated was rounded to the line's quantity precision, so it always fits).
        part = rated.parts[0] if len(rated.parts) == 1 else None
        exact = (
            price
            and part
            and not rated.minimum_applied
            and already is None
            and price.pricing_model in ("per_unit", "volume")
            and not part.flat_fee
            and self._fits_precision(part.unit_price, "Product Price")
            and self._fits_precision(part.quantity, "Product Unit of Measure")
        )
        if exact:
            invoice_qty, unit_price = float(part.quantity), float(part.unit_price)
        elif already is not None:
            invoice_qty, unit_price = 1.0, float(rated.amount - already)
        else:
            invoice_qty, unit_price = 1.0, float(rated.amount)
        journal = journal_for(self)
        account, taxes = accounts_for(line, journal)
        return self._invoice_line_vals(
            "usage",
            product,
            label,
            invoice_qty,
            unit_price,
            account,
            taxes,
            product_uom_id=line.product_uom_id.id,
            discount=line.discount,
            flex_subscription_line_id=line.id,
            flex_period_start=window.start,
            flex_period_end=window.end - timedelta(days=1),
        )

    @api.model
    def _fits_precision(self, number, precision_name):
        digits = self.env["decimal.precision"].precision_get(precision_name)
        return number == round_money(number, digits)

    @api.model
    def _release_usage(self, move_lines):
        """Usage billed by ``move_lines`` (being deleted) becomes pending again, so it is
        billed by the next invoice instead of being lost."""
        rows = [
            (
                line.id,
                line.flex_subscription_line_id.subscription_id.id,
                line.product_id.id,
                _day_start(line.flex_period_start),
                _day_start(line.flex_period_end + timedelta(days=1)),
            )
            for line in move_lines
            if line.flex_line_kind == "usage" and line.flex_subscription_line_id
        ]
        if not rows:
            return
        self.env.flush_all()
        self.env.cr.execute(
            """
            UPDATE flex_usage u
               SET state = 'pending', billed_line_ref = NULL
              FROM unnest(%s::int[], %s::int[], %s::int[], %s::timestamp[], %s::timestamp[])
                   AS w(line_id, sub_id, product_id, ws, we)
             WHERE u.subscription_id = w.sub_id AND u.product_id = w.product_id
               AND u.event_time >= w.ws AND u.event_time < w.we
               AND u.billed_line_ref = w.line_id
            """,
            [list(column) for column in zip(*rows, strict=True)],
        )
        self.env["flex.usage"].invalidate_model()

    def _mark_usage_invoiced(self, moves):
        """Freeze the events each usage line billed. Same window as the rating query; in
        Odoo's REPEATABLE READ transaction an event committed meanwhile is invisible here
        too, so it stays pending and goes on the next invoice as a late event."""
        rows = []
        for line in moves.line_ids:
            if line.flex_line_kind == "usage":
                rows.append(
                    (
                        line.id,
                        line.flex_subscription_line_id.subscription_id.id,
                        line.product_id.id,
                        _day_start(line.flex_period_start),
                        _day_start(line.flex_period_end + timedelta(days=1)),
                    )
                )
        if not rows:
            return
        self.env.cr.execute(
            """
            UPDATE flex_usage u
               SET state = 'invoiced', billed_line_ref = w.line_id,
                   write_uid = %s, write_date = now() AT TIME ZONE 'UTC'
              FROM unnest(%s::int[], %s::int[], %s::int[], %s::timestamp[], %s::timestamp[])
                   AS w(line_id, sub_id, product_id, ws, we)
             WHERE u.subscription_id = w.sub_id AND u.product_id = w.product_id
               AND u.event_time >= w.ws AND u.event_time < w.we AND u.state = 'pending'
            """,
            [self.env.uid, *[list(column) for column in zip(*rows, strict=True)]],
        )
        self.env["flex.usage"].invalidate_model()

    # -------------------------------------------------------------- live view

    def _get_usage_summary(self, now=None):
        """Current usage per metric: what the portal and the form show.

        ``[{"product", "aggregation", "quantity", "included", "included_left",
        "amount", "detail", "period_start", "period_end"}]``; amounts are estimates
        with the price version valid today (``Decimal``, currency-rounded)."""
        self.ensure_one()
        now = now or fields.Datetime.now()
        if not self.has_metered_lines or not self.usage_billed_until:
            return []
        start = self.usage_billed_until
        today = now.date()
        plan = self.plan_id
        anchor = self.billing_anchor_date
        end = (
            P.period_containing(
                anchor, plan.billing_interval, plan.billing_unit, max(today, anchor)
            ).end
            if today >= start
            else start
        )
        window = P.Period(start, max(end, start))
        aggregates = self._aggregate_usage({0: (self.id, window.start, window.end)})
        prices = self._usage_prices({0: (self, None, window, False)})
        summary = []
        for line in self.line_ids.filtered(lambda line: line.product_id.flex_metered):
            product = line.product_id
            values = aggregates.get((0, product.id))
            quantity = values[product.flex_aggregation] if values else Decimal(0)
            price = prices.get((self.id, product.id, window.start))
            rated = (
                price._rate(quantity)
                if price
                else rating.rate(
                    quantity,
                    "per_unit",
                    0,
                    quantity_decimals=self.env["flex.price"]._usage_quantity_digits(),
                )
            )
            included = Decimal(repr(price.included_quantity)) if price else Decimal(0)
            summary.append(
                {
                    "product": product,
                    "aggregation": product.flex_aggregation,
                    # as it will be invoiced: rounded to the invoice line's precision
                    "quantity": rated.quantity,
                    "included": included,
                    "included_left": max(included - rated.quantity, Decimal(0)),
                    "amount": rated.amount,
                    "detail": rating.describe(
                        rated,
                        included,
                        product.flex_unit_label or "",
                        self.currency_id.decimal_places,
                    ),
                    "period_start": window.start,
                    "period_end": window.end - timedelta(days=1),
                }
            )
        return summary

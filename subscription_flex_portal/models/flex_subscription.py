"""Portal side of subscriptions: access tokens, and what a customer may change.

The self-service rules live here, not in the controller, so that the back office, the
tests and the routes share them: :meth:`_portal_change_vals` turns what a customer posted
into the values of a draft ``flex.subscription.change`` (source "portal"), or refuses it
with a message in the customer's language. Money is never computed here: the preview and
the documents come from the core change (``_get_preview``, ``action_confirm``).
"""

import math
from decimal import Decimal

from odoo import Command, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare, format_date, formatLang

RUNNING_STATES = ("trial", "active", "paused", "to_close")
CHANGEABLE_STATES = ("trial", "active", "to_close")
PORTAL_ACTIONS = ("quantity", "option_add", "option_remove", "plan", "cancel", "undo")


class FlexSubscription(models.Model):
    _name = "flex.subscription"
    _inherit = ["flex.subscription", "portal.mixin"]

    def _compute_access_url(self):
        for sub in self:
            sub.access_url = f"/my/subscriptions/{sub.id}"

    # ------------------------------------------------------------ portal reads

    def _portal_plan_line(self, product):
        """Template line of the current plan for ``product`` (first one), or empty."""
        self.ensure_one()
        return self.plan_id.line_ids.filtered(lambda tmpl: tmpl.product_id == product)[:1]

    def _portal_editable_lines(self):
        """``{subscription line: plan line}`` of the lines whose quantity a customer may
        change."""
        self.ensure_one()
        result = {}
        for line in self.line_ids:
            tmpl = self._portal_plan_line(line.product_id)
            if tmpl.portal_editable and not line.product_metered:
                result[line] = tmpl
        return result

    def _portal_options(self):
        """``(addable plan lines, removable subscription lines)``: optional add-ons."""
        self.ensure_one()
        optional = self.plan_id.line_ids.filtered("optional")
        present = self.line_ids.product_id
        addable = optional.filtered(lambda tmpl: tmpl.product_id not in present)
        removable = self.line_ids.filtered(lambda line: line.product_id in optional.product_id)
        return addable, removable

    def _portal_switch_plans(self):
        self.ensure_one()
        return self.plan_id.portal_switch_plan_ids.filtered(
            lambda plan: (
                plan != self.plan_id
                and plan.active
                and (not plan.company_id or plan.company_id == self.company_id)
            )
        )

    def _portal_can_change(self):
        self.ensure_one()
        return self.state in CHANGEABLE_STATES

    def _portal_can_cancel(self):
        self.ensure_one()
        return self.state in ("trial", "active") and self.plan_id.portal_cancel != "none"

    def _portal_next_invoice_estimate(self):
        """Untaxed estimate of the next invoice: the recurring amount of one period and
        the usage so far (rated by the core), as ``Decimal``."""
        self.ensure_one()
        if not self.next_invoice_date:
            return None
        usage = sum((row["amount"] for row in self._get_usage_summary()), Decimal(0))
        return Decimal(repr(self.recurring_total)) + usage

    def _portal_history(self):
        self.ensure_one()
        return self.change_ids.filtered(
            lambda change: change.state != "draft" and not change.flex_preview_expired
        )

    def _portal_sepa_mandate(self):
        """The mandate shown in the portal (``None`` without subscription_flex_sepa): the
        subscription's, else the customer's valid one."""
        self.ensure_one()
        if "flex.sepa.mandate" not in self.env:
            return None
        if self.sepa_mandate_id:
            return self.sepa_mandate_id
        return self.env["flex.sepa.mandate"].search(
            [
                ("partner_id", "=", self.commercial_partner_id.id),
                ("company_id", "=", self.company_id.id),
                ("state", "=", "valid"),
            ],
            order="signature_date desc, id desc",
            limit=1,
        )

    # ------------------------------------------------------ portal self-service

    def _portal_change_vals(self, action, values):
        """Values of the draft change the customer asks for with ``values`` (the posted
        form). Raises ``UserError`` on anything the plan does not allow."""
        self.ensure_one()
        env = self.env
        if action not in PORTAL_ACTIONS:
            raise UserError(env._("Unknown action."))
        if action == "undo":
            if self.state != "to_close":
                raise UserError(env._("This subscription has no scheduled cancellation."))
            return self._portal_base_vals("undo_cancel")
        if action == "cancel":
            return self._portal_cancel_vals(values)
        if not self._portal_can_change():
            raise UserError(
                env._("%(name)s cannot be changed in its current state.", name=self.name)
            )
        if action == "quantity":
            return self._portal_quantity_vals(values)
        if action == "option_add":
            return self._portal_option_add_vals(values)
        if action == "option_remove":
            return self._portal_option_remove_vals(values)
        return self._portal_plan_vals(values)

    def _portal_base_vals(self, change_type, **vals):
        return {
            "subscription_id": self.id,
            "change_type": change_type,
            "timing": "now",
            "source": "portal",
            **vals,
        }

    def _portal_line(self, values):
        """The subscription line named by ``values["line_id"]``; refused when it is not
        one of this subscription's."""
        line_id = _to_int(values.get("line_id"))
        line = self.line_ids.filtered(lambda line: line.id == line_id)
        if not line:
            raise UserError(self.env._("This line is not on your subscription."))
        return line

    def _portal_quantity_vals(self, values):
        env = self.env
        line = self._portal_line(values)
        tmpl = self._portal_editable_lines().get(line)
        if not tmpl:
            raise UserError(
                env._(
                    "The quantity of %(product)s cannot be changed here.",
                    product=line.product_id.display_name,
                )
            )
        quantity = _to_quantity(values.get("quantity"))
        if quantity is None:
            raise UserError(env._("Enter the new quantity as a number."))
        digits = env["decimal.precision"].precision_get("Product Unit of Measure")
        low, high = tmpl.portal_min_quantity, tmpl.portal_max_quantity
        too_low = float_compare(quantity, low, precision_digits=digits) < 0
        too_high = high and float_compare(quantity, high, precision_digits=digits) > 0
        if too_low or too_high:
            if high:
                raise UserError(
                    env._(
                        "The quantity of %(product)s must be between %(min)s and %(max)s.",
                        product=line.product_id.display_name,
                        min=formatLang(env, low, digits=_digits(low)),
                        max=formatLang(env, high, digits=_digits(high)),
                    )
                )
            raise UserError(
                env._(
                    "The quantity of %(product)s must be at least %(min)s.",
                    product=line.product_id.display_name,
                    min=formatLang(env, low, digits=_digits(low)),
                )
            )
        if not float_compare(quantity, line.quantity, precision_digits=digits):
            raise UserError(env._("This is already the current quantity."))
        return self._portal_base_vals(
            "lines",
            line_ids=[Command.create({"subscription_line_id": line.id, "quantity": quantity})],
        )

    def _portal_option_add_vals(self, values):
        env = self.env
        addable, _removable = self._portal_options()
        tmpl_id = _to_int(values.get("option_id"))
        tmpl = addable.filtered(lambda tmpl: tmpl.id == tmpl_id)
        if not tmpl:
            raise UserError(env._("This option cannot be added to your subscription."))
        quantity = tmpl.quantity or 1.0
        return self._portal_base_vals(
            "lines",
            line_ids=[
                Command.create(
                    {"product_id": tmpl.product_id.id, "name": tmpl.name, "quantity": quantity}
                )
            ],
        )

    def _portal_option_remove_vals(self, values):
        env = self.env
        line = self._portal_line(values)
        _addable, removable = self._portal_options()
        if line not in removable:
            raise UserError(
                env._(
                    "%(product)s is not an option: it cannot be removed.",
                    product=line.product_id.display_name,
                )
            )
        return self._portal_base_vals(
            "lines",
            line_ids=[Command.create({"subscription_line_id": line.id, "quantity": 0.0})],
        )

    def _portal_plan_vals(self, values):
        env = self.env
        plan_id = _to_int(values.get("plan_id"))
        plan = self._portal_switch_plans().filtered(lambda plan: plan.id == plan_id)
        if not plan:
            raise UserError(env._("Your plan cannot be switched to this one."))
        return self._portal_base_vals("plan", new_plan_id=plan.id)

    def _portal_cancel_vals(self, values):
        env = self.env
        if not self._portal_can_cancel():
            raise UserError(env._("This subscription cannot be cancelled from the portal."))
        when = values.get("when") or "period_end"
        if when not in ("period_end", "now") or (
            when == "now" and self.plan_id.portal_cancel != "now"
        ):
            raise UserError(env._("This way of cancelling is not available for your plan."))
        reason_id = _to_int(values.get("reason_id"))
        reason = env["flex.close.reason"].browse(reason_id).exists() if reason_id else None
        if not reason:
            raise UserError(env._("Tell us why you cancel."))
        note = (values.get("note") or "").strip()[:2000] or False
        change_type = "cancel_now" if when == "now" else "cancel_end"
        return self._portal_base_vals(change_type, close_reason_id=reason.id, note=note)

    def _portal_end_sentence(self):
        """When the service would end if cancelled today (the core's rule)."""
        self.ensure_one()
        end = self.earliest_end_date
        if not end:
            return ""
        return self.env._(
            "The service ends on %(date)s (last day of service %(last)s); billing runs "
            "until then and nothing is refunded.",
            date=format_date(self.env, end),
            last=format_date(self.env, fields.Date.subtract(end, days=1)),
        )


def _to_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _to_quantity(value):
    """A posted quantity as a float (``None`` when it is not a finite number)."""
    if value is None:
        return None
    try:
        quantity = float(str(value).strip().replace(",", "."))
    except ValueError:
        return None
    return quantity if math.isfinite(quantity) else None


def _digits(value):
    return 0 if float(value).is_integer() else 2

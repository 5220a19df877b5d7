"""Customer portal: /my/subscriptions, the subscription page and self-service changes.

Every route reads the subscription through ``_document_check_access`` (record rules of
the portal user, or the access token of a shared link); the self-service routes are
``auth="user"`` and accept the owner only (a shared link shows, it does not change). Every
POST is a plain ``type="http"`` route, so Odoo checks its CSRF token before the method
runs. A change is always: validate (the model's ``_portal_change_vals``), create a draft
``flex.subscription.change`` and show the core's preview; then confirm that draft once.
"""

import re
from collections import OrderedDict

from werkzeug.exceptions import NotFound

from odoo import fields, http
from odoo.exceptions import AccessError, MissingError, UserError, ValidationError
from odoo.http import content_disposition, request

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

ACTIONS = "quantity,option_add,option_remove,plan,cancel,undo"


class FlexSubscriptionPortal(CustomerPortal):
    # ------------------------------------------------------------------ home

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "flex_subscription_count" in counters:
            Subscription = request.env["flex.subscription"]
            values["flex_subscription_count"] = (
                Subscription.search_count(self._get_flex_subscriptions_domain())
                if Subscription.has_access("read")
                else 0
            )
        return values

    def _get_flex_subscriptions_domain(self):
        # Internal users who visit /my see their own company's subscriptions too, like
        # sale's portal; portal users are limited by the record rules as well.
        partner = request.env.user.partner_id
        return [
            ("commercial_partner_id", "=", partner.commercial_partner_id.id),
            ("state", "!=", "draft"),
        ]

    def _get_flex_subscription_searchbar_sortings(self):
        env = request.env
        return {
            "date": {"label": env._("Newest"), "order": "start_date desc, id desc"},
            "name": {"label": env._("Reference"), "order": "name asc, id asc"},
            "next": {"label": env._("Next Invoice"), "order": "next_invoice_date asc, id desc"},
            "state": {"label": env._("Status"), "order": "state asc, id desc"},
        }

    def _get_flex_subscription_searchbar_filters(self):
        env = request.env
        return OrderedDict(
            [
                ("all", {"label": env._("All"), "domain": []}),
                (
                    "running",
                    {
                        "label": env._("Running"),
                        "domain": [("state", "in", ("trial", "active", "paused", "to_close"))],
                    },
                ),
                ("closed", {"label": env._("Closed"), "domain": [("state", "=", "closed")]}),
            ]
        )

    # ------------------------------------------------------------------ list

    @http.route(
        ["/my/subscriptions", "/my/subscriptions/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_flex_subscriptions(self, page=1, sortby=None, filterby=None, **kw):
        values = self._prepare_portal_layout_values()
        Subscription = request.env["flex.subscription"]
        sortings = self._get_flex_subscription_searchbar_sortings()
        filters = self._get_flex_subscription_searchbar_filters()
        sortby = sortby if sortby in sortings else "date"
        filterby = filterby if filterby in filters else "all"
        domain = self._get_flex_subscriptions_domain() + filters[filterby]["domain"]
        can_read = Subscription.has_access("read")
        total = Subscription.search_count(domain) if can_read else 0
        pager = portal_pager(
            url="/my/subscriptions",
            url_args={"sortby": sortby, "filterby": filterby},
            total=total,
            page=page,
            step=self._items_per_page,
        )
        subscriptions = (
            Subscription.search(
                domain,
                order=sortings[sortby]["order"],
                limit=self._items_per_page,
                offset=pager["offset"],
            )
            if can_read
            else Subscription
        )
        request.session["my_flex_subscriptions_history"] = subscriptions.ids[:100]
        values.update(
            {
                "subscriptions": subscriptions,
                "page_name": "flex_subscription",
                "pager": pager,
                "default_url": "/my/subscriptions",
                "searchbar_sortings": sortings,
                "sortby": sortby,
                "searchbar_filters": filters,
                "filterby": filterby,
            }
        )
        return request.render("subscription_flex_portal.portal_my_flex_subscriptions", values)

    # ---------------------------------------------------------------- detail

    @http.route(
        ["/my/subscriptions/<int:subscription_id>"], type="http", auth="public", website=True
    )
    def portal_my_flex_subscription(self, subscription_id, access_token=None, **kw):
        try:
            sub_sudo = self._document_check_access(
                "flex.subscription", subscription_id, access_token
            )
        except (AccessError, MissingError):
            return request.redirect("/my")
        values = self._flex_subscription_page_values(sub_sudo, access_token, **kw)
        return request.render("subscription_flex_portal.portal_flex_subscription_page", values)

    def _flex_is_owner(self, sub_sudo):
        """The visitor sees the subscription through the record rules (not only a token)."""
        if request.env.user._is_public():
            return False
        sub = request.env["flex.subscription"].browse(sub_sudo.id)
        try:
            sub.check_access("read")
        except AccessError:
            return False
        return True

    def _flex_subscription_page_values(self, sub_sudo, access_token, **kw):
        is_owner = self._flex_is_owner(sub_sudo)
        addable, removable = sub_sudo._portal_options()
        invoices = sub_sudo.invoice_ids.filtered(lambda move: move.state == "posted").sorted(
            lambda move: (move.invoice_date or move.date, move.id), reverse=True
        )
        mandate = sub_sudo._portal_sepa_mandate()
        values = {
            "subscription": sub_sudo,
            "page_name": "flex_subscription",
            "is_owner": is_owner,
            "editable_lines": sub_sudo._portal_editable_lines() if is_owner else {},
            "addable_options": addable if is_owner else addable.browse(),
            "removable_lines": removable if is_owner else removable.browse(),
            "switch_plans": sub_sudo._portal_switch_plans() if is_owner else [],
            "can_change": is_owner and sub_sudo._portal_can_change(),
            "can_cancel": is_owner and sub_sudo._portal_can_cancel(),
            "can_undo": is_owner and sub_sudo.state == "to_close",
            "estimate": sub_sudo._portal_next_invoice_estimate(),
            "usage": sub_sudo._get_usage_summary(),
            "invoices": invoices[:20],
            "history": sub_sudo._portal_history()[:30],
            "sepa_enabled": mandate is not None,
            "mandate": mandate,
            "message": kw.get("message"),
        }
        return self._get_page_view_values(
            sub_sudo, access_token, values, "my_flex_subscriptions_history", False, **kw
        )

    # ------------------------------------------------------------ self-service

    def _flex_owned_subscription(self, subscription_id):
        """The subscription in sudo, when the logged-in user may read it through the record
        rules (no access token: a shared link does not allow changes). 404 otherwise."""
        try:
            return self._document_check_access("flex.subscription", subscription_id)
        except (AccessError, MissingError):
            raise NotFound()

    @http.route(
        [f"/my/subscriptions/<int:subscription_id>/<any({ACTIONS}):action>"],
        type="http",
        auth="user",
        methods=["GET", "POST"],
        website=True,
    )
    def portal_flex_subscription_change(self, subscription_id, action, **post):
        sub_sudo = self._flex_owned_subscription(subscription_id)
        if request.httprequest.method != "POST":
            return self._flex_render_change(sub_sudo, action, post)
        if post.get("step") == "confirm":
            return self._flex_confirm_change(sub_sudo, action, post)
        return self._flex_preview_change(sub_sudo, action, post)

    @staticmethod
    def _flex_preview_key(preview):
        """What the customer agrees to: the day, the document and its amounts."""
        return "|".join(
            str(value)
            for value in (
                preview["effective_date"],
                preview["document"],
                preview["untaxed"],
                preview["tax"],
                preview["total"],
            )
        )

    def _flex_render_change(
        self, sub_sudo, action, post, error=None, change=None, status=200, show_preview=False
    ):
        preview = change._get_preview() if change and (show_preview or not error) else None
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "subscription": sub_sudo,
                "page_name": "flex_subscription",
                "action": action,
                "post": post,
                "error": error,
                "change": change,
                "preview": preview,
                "preview_key": self._flex_preview_key(preview) if preview else "",
                "editable_lines": sub_sudo._portal_editable_lines(),
                "addable_options": sub_sudo._portal_options()[0],
                "removable_lines": sub_sudo._portal_options()[1],
                "switch_plans": sub_sudo._portal_switch_plans(),
                # Close reasons are configuration the customer only picks from.
                "close_reasons": request.env["flex.close.reason"].sudo().search([]),
            }
        )
        return request.render(
            "subscription_flex_portal.portal_flex_subscription_change", values, status=status
        )

    def _flex_preview_change(self, sub_sudo, action, post):
        try:
            vals = sub_sudo._portal_change_vals(action, post)
        except UserError as error:
            return self._flex_render_change(sub_sudo, action, post, error.args[0], status=400)
        try:
            # The draft and its preview in a savepoint: a change the core refuses leaves
            # nothing behind.
            with request.env.cr.savepoint():
                # Portal users have no write access to subscriptions: the draft is created
                # as superuser once _portal_change_vals accepted it for the owner above
                # (requested_by_id stays the portal user).
                change = request.env["flex.subscription.change"].sudo().create(vals)
                change._get_preview()
        except (UserError, ValidationError) as error:
            return self._flex_render_change(sub_sudo, action, post, error.args[0], status=400)
        return self._flex_render_change(sub_sudo, action, post, change=change)

    def _flex_confirm_change(self, sub_sudo, action, post):
        env = request.env
        change_id = post.get("change_id")
        change = (
            env["flex.subscription.change"]
            .sudo()  # read and applied for the owner checked above (no rights on changes)
            .browse(int(change_id) if str(change_id or "").isdigit() else 0)
            .exists()
        )
        if not change or change.subscription_id != sub_sudo or change.source != "portal":
            raise NotFound()
        if change.flex_preview_expired:
            # A preview left unconfirmed for a day expires (autovacuum).
            return self._flex_render_change(
                sub_sudo,
                action,
                post,
                env._("This preview has expired: preview the change again."),
                status=409,
            )
        if change.state != "draft":
            return self._flex_render_result(
                sub_sudo, change, env._("This change was already confirmed.")
            )
        try:
            fresh = change._get_preview()
        except (UserError, ValidationError) as error:
            return self._flex_render_change(
                sub_sudo, action, post, error.args[0], change=change, status=400
            )
        if self._flex_preview_key(fresh) != post.get("preview_key"):
            # What the customer saw is no longer what confirming would do (another day,
            # another change, a new price version): the new preview, to confirm again.
            return self._flex_render_change(
                sub_sudo,
                action,
                post,
                env._("The amounts changed since the preview: check them and confirm again."),
                change=change,
                status=409,
                show_preview=True,
            )
        try:
            with env.cr.savepoint():
                # Applied by the core as the back office would (invoices in sudo there).
                change.action_confirm()
        except (UserError, ValidationError) as error:
            return self._flex_render_change(
                sub_sudo, action, post, error.args[0], change=change, status=400
            )
        return self._flex_render_result(sub_sudo, change)

    def _flex_render_result(self, sub_sudo, change, message=None):
        values = self._prepare_portal_layout_values()
        move = change.move_id
        values.update(
            {
                "subscription": sub_sudo,
                "page_name": "flex_subscription",
                "change": change,
                "move": move,
                "move_url": move.get_portal_url() if move else False,
                "mandate": sub_sudo._portal_sepa_mandate(),
                "message": message,
            }
        )
        return request.render("subscription_flex_portal.portal_flex_change_result", values)

    # ------------------------------------------------------------ SEPA (optional)

    def _flex_sepa_installed(self):
        return "flex.sepa.mandate" in request.env

    @http.route(
        ["/my/subscriptions/<int:subscription_id>/mandate"],
        type="http",
        auth="user",
        methods=["GET", "POST"],
        website=True,
    )
    def portal_flex_subscription_mandate(self, subscription_id, **post):
        if not self._flex_sepa_installed():
            raise NotFound()
        sub_sudo = self._flex_owned_subscription(subscription_id)
        mandate, error, status = None, None, 200
        if request.httprequest.method == "POST":
            try:
                with request.env.cr.savepoint():
                    mandate = self._flex_sign_mandate(sub_sudo, post)
            except (UserError, ValidationError) as exc:
                error, status = exc.args[0], 400
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "subscription": sub_sudo,
                "page_name": "flex_subscription",
                "action": "mandate",
                "post": post,
                "error": error,
                "mandate": mandate,
            }
        )
        return request.render(
            "subscription_flex_portal.portal_flex_mandate_sign", values, status=status
        )

    def _flex_sign_mandate(self, sub_sudo, post):
        """A valid recurrent mandate of the customer for ``post["iban"]``, signed today;
        the subscription is then paid by direct debit."""
        from odoo.addons.base_iban.models.res_partner_bank import normalize_iban, validate_iban

        env = request.env
        holder = (post.get("holder") or "").strip()[:140]
        iban = normalize_iban(post.get("iban") or "")
        if not holder:
            raise UserError(env._("Enter the name of the account holder."))
        if not iban:
            raise UserError(env._("Enter your IBAN."))
        validate_iban(iban)  # ValidationError with Odoo's own message
        if not post.get("consent"):
            raise UserError(env._("Tick the box to agree to the mandate."))
        partner = sub_sudo.commercial_partner_id
        # Bank accounts and mandates are back-office records the portal user cannot write;
        # they are created for the customer whose subscription was checked above.
        Bank = env["res.partner.bank"].sudo()
        bank = Bank.search(
            [("partner_id", "=", partner.id), ("sanitized_acc_number", "=", iban)], limit=1
        ) or Bank.create({"partner_id": partner.id, "acc_number": iban, "acc_holder_name": holder})
        mandate = (
            env["flex.sepa.mandate"]
            .sudo()  # same reason as above
            .with_company(sub_sudo.company_id)
            .create(
                {
                    "partner_id": partner.id,
                    "partner_bank_id": bank.id,
                    "company_id": sub_sudo.company_id.id,
                    "signature_date": fields.Date.context_today(sub_sudo),
                    "recurrence": "recurrent",
                }
            )
        )
        mandate.action_validate()
        sub_sudo.payment_method = "sepa"
        mandate.message_post(
            body=env._(
                "Signed online in the customer portal by %(user)s (account holder %(holder)s).",
                user=env.user.name,
                holder=holder,
            )
        )
        return mandate

    def _get_http_headers(self, model, report_type, report, download):
        if model._name != "flex.sepa.mandate" or report_type != "pdf":
            return super()._get_http_headers(model, report_type, report, download)
        # Mandates have no portal mixin (no _get_report_base_filename): named by reference.
        filename = "SEPA_mandate_%s.pdf" % re.sub(r"\W+", "_", model.reference or "")
        return {
            "Content-Type": "application/pdf",
            "Content-Length": len(report),
            "Content-Disposition": content_disposition(
                filename, disposition_type="attachment" if download else "inline"
            ),
        }

    @http.route(
        ["/my/subscriptions/<int:subscription_id>/mandate/pdf"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_flex_subscription_mandate_pdf(self, subscription_id, **kw):
        if not self._flex_sepa_installed():
            raise NotFound()
        sub_sudo = self._flex_owned_subscription(subscription_id)
        mandate = sub_sudo._portal_sepa_mandate()
        if not mandate:
            raise NotFound()
        return self._show_report(
            model=mandate,
            report_type="pdf",
            report_ref="subscription_flex_sepa.action_report_flex_sepa_mandate",
            download=kw.get("download") == "true",
        )

"""Previews the portal made and the customer never confirmed.

Each preview on the portal is a draft change (the core's preview needs one). A customer
who looks at the amounts and leaves abandons it. Odoo's daily autovacuum expires such
drafts once they are older than ``PORTAL_PREVIEW_DAYS`` (cancelled, marked expired: a
customer confirming one later is told so), and deletes expired ones after
``EXPIRED_PREVIEW_DAYS``. Drafts made in the back office or for a sales quotation are
people's work and stay; so does every change a customer confirmed."""

import logging
from datetime import timedelta

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

PORTAL_PREVIEW_DAYS = 1
EXPIRED_PREVIEW_DAYS = 30


class FlexSubscriptionChange(models.Model):
    _inherit = "flex.subscription.change"

    flex_preview_expired = fields.Boolean(
        string="Expired Preview",
        readonly=True,
        copy=False,
        help="A preview the customer made in the portal and never confirmed.",
    )

    @api.autovacuum
    def _gc_portal_previews(self):
        """Expire old previews, delete long-expired ones; returns (expired, deleted)."""
        now = fields.Datetime.now()
        Change = self.sudo()
        drafts = Change.search(
            [
                ("state", "=", "draft"),
                ("source", "=", "portal"),
                ("create_date", "<", now - timedelta(days=PORTAL_PREVIEW_DAYS)),
            ]
        )
        drafts.write({"state": "cancelled", "flex_preview_expired": True})
        old = Change.search(
            [
                ("flex_preview_expired", "=", True),
                ("state", "=", "cancelled"),
                ("write_date", "<", now - timedelta(days=EXPIRED_PREVIEW_DAYS)),
            ]
        )
        old.unlink()
        if drafts or old:
            _logger.info(
                "Portal previews never confirmed: %s expired, %s deleted", len(drafts), len(old)
            )
        return len(drafts), len(old)

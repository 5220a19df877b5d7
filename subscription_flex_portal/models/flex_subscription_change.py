"""Previews the portal made and the customer never confirmed.

Each preview on the portal is a draft change (the core's preview needs one). A customer
who looks at the amounts and leaves abandons it: Odoo's daily autovacuum removes such
drafts once they are older than ``PORTAL_PREVIEW_DAYS``. Drafts made in the back office or
for a sales quotation are people's work and stay."""

import logging
from datetime import timedelta

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

PORTAL_PREVIEW_DAYS = 1


class FlexSubscriptionChange(models.Model):
    _inherit = "flex.subscription.change"

    @api.autovacuum
    def _gc_portal_previews(self):
        cutoff = fields.Datetime.now() - timedelta(days=PORTAL_PREVIEW_DAYS)
        drafts = self.sudo().search(
            [("state", "=", "draft"), ("source", "=", "portal"), ("create_date", "<", cutoff)]
        )
        if drafts:
            _logger.info("Portal previews never confirmed: %s removed", len(drafts))
            drafts.unlink()
        return len(drafts)

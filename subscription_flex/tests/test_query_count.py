import logging
from datetime import date

from odoo.tests import tagged

from .common import FlexCommon

_logger = logging.getLogger(__name__)

# Queries per invoiced subscription (one posted invoice with 2 product lines each).
# Measured: see the issue note; the bound leaves ~20% headroom for noise between
# Odoo patch releases, and must never be raised to hide a per-record query.
MAX_QUERIES_PER_SUBSCRIPTION = 16


@tagged("post_install", "-at_install")
class TestQueryCount(FlexCommon):
    def _queries_for(self, count):
        subs = self.Subscription
        for _i in range(count):
            subs |= self._create_subscription(
                lines=[
                    (self.product_seat, 3, 10.0, 0.0),
                    (self.product_support, 1, 49.0, 0.0),
                ]
            )
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.env.cr.sql_log_count
        done = self._run_cron(date(2026, 1, 1), batch_size=count)
        self.env.flush_all()
        queries = self.env.cr.sql_log_count - before
        self.assertEqual(len(self._recurring_invoices(subs)), count)
        self.assertEqual(done & subs, subs)
        return queries

    def test_queries_per_subscription_do_not_grow(self):
        small = self._queries_for(5)
        large = self._queries_for(40)
        _logger.info(
            "flex cron queries: 5 subs -> %s (%.1f/sub), 40 subs -> %s (%.1f/sub)",
            small,
            small / 5,
            large,
            large / 40,
        )
        self.assertLessEqual(large / 40, MAX_QUERIES_PER_SUBSCRIPTION)
        # Fixed costs amortise: the per-subscription cost of a larger batch is no higher.
        self.assertLessEqual(large / 40, small / 5)

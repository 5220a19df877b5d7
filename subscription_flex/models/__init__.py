from . import flex_close_reason
from . import flex_plan
from . import flex_plan_line
from . import flex_price
from . import flex_price_tier
from . import flex_usage
from . import flex_subscription
from . import flex_subscription_line
from . import flex_subscription_usage
from . import flex_subscription_change
from . import flex_subscription_changes
from . import flex_reminder
from . import product_template
from . import res_partner
from . import account_move
from . import account_move_line
from . import ir_cron
from . import flex_subscription_sale
from . import flex_subscription_change_sale
from . import sale_order
from . import sale_order_line
from . import sale_report

# Last: its SQL view reads columns the extensions above add to account.move.line.
from . import flex_mrr
from . import payment_transaction

from . import flex_plan
from . import flex_plan_line
from . import flex_subscription
from . import flex_subscription_change

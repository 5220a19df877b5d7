from . import flex_subscription_close_wizard
from . import flex_plan_migration

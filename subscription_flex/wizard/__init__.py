from . import flex_subscription_close_wizard

from . import res_company
from . import res_config_settings
from . import flex_sepa_mandate
from . import flex_subscription
from . import flex_sepa_batch
from . import account_move
from . import account_payment_method

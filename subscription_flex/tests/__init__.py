from . import test_core_periods
from . import test_core_money
from . import test_lifecycle
from . import test_recurring_invoicing
from . import test_invoice_parity
from . import test_security
from . import test_query_count
from . import test_forms

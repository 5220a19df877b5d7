from . import test_core_sepa
from . import test_mandates
from . import test_batches

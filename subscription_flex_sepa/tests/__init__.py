from . import test_core_sepa
from . import test_mandates
from . import test_batches
from . import test_bankfiles_builders
from . import test_bank_files
from . import test_bank_booking

from . import flex_sepa_bank_file_import

"""The seam to the warehouse: the only module that opens a database connection.

`open_warehouse(settings.warehouse)` gives a `Warehouse`; `with warehouse.connect() as conn:` gives a
`Connection` that runs SQL with bound parameters (`%s` placeholders on both dialects), reads and
writes pandas frames, and commits when the block ends without an error.
"""

from tenantpulse.warehouse.base import Connection, Warehouse, WarehouseBusyError, WarehouseError
from tenantpulse.warehouse.identifiers import IdentifierError, qualified, quote_ident
from tenantpulse.warehouse.open import open_warehouse

__all__ = [
    "Connection",
    "IdentifierError",
    "Warehouse",
    "WarehouseBusyError",
    "WarehouseError",
    "open_warehouse",
    "qualified",
    "quote_ident",
]

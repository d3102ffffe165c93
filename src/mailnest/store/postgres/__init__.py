"""The PostgreSQL backend: several mailnest nodes on one database, a schema per tenant, events across nodes.

`PostgresStore(url, hub, max_messages=..., max_age=..., tenant=...)` satisfies the Store protocol with the same
answers as SQLiteStore. Needs psycopg 3 and psycopg_pool (`pip install 'mailnest[postgres]'`).
"""

from ..base import StoreUnavailableError
from .store import PostgresStore

__all__ = ["PostgresStore", "StoreUnavailableError"]

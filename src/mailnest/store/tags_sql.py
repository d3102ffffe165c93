"""Where SQLiteStore's tag SQL used to live; it is `mailnest.store.sqlite.tags` now. Kept so that the names
other code imported from here still import."""

from .sqlite.tags import _CHUNK, _HAS_TAG, TagCache, TagMethods, TagRules
from .sqlite.tags import TagMethods as TagStoreMixin

__all__ = ["_CHUNK", "_HAS_TAG", "TagCache", "TagMethods", "TagRules", "TagStoreMixin"]

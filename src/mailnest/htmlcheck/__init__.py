"""HTML compatibility check in Mailpit's shape (`GET /api/v1/message/{ID}/html-check`): which HTML and CSS
features a message uses and which mail clients support each, from the caniemail.com data set shipped here
(`caniemail.json`, MIT licence, see README.md and LICENSE.caniemail next to it).

`check(html)` is pure and synchronous (CPU only, linear in the HTML): call it off the event loop with
`asyncio.to_thread` for a large message.
"""

from .report import MAX_HTML_CHARS, check, truncated

__all__ = ["MAX_HTML_CHARS", "check", "truncated"]

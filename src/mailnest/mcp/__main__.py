"""`python -m mailnest.mcp --url http://127.0.0.1:8025`: the MCP server on stdio (see stdio.py)."""

import sys

from mailnest.mcp.stdio import main

if __name__ == "__main__":
    sys.exit(main())

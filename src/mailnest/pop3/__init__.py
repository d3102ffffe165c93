"""POP3 (RFC 1939, RFC 2449): parser and responses are pure, session is the state machine, server the socket glue."""

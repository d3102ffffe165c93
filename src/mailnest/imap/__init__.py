"""IMAP4rev1 (RFC 3501) front door, with IDLE, MOVE, UIDPLUS, NAMESPACE, ENABLE, LITERAL+, ID, UNSELECT.

Modules: tokens/parser/fetch_items/search_keys/sequence (bytes -> commands), quoting/responses/envelope/
bodystructure/addresses/headers/listing (rendering), session/mailboxes/fetch/search/selected (the state
machine over the store), cache/views (what the sessions of a listener share), server (sockets).

A login sees, in INBOX, the delivered mail whose envelope named it; the catch-all login (Config.catch_all_login)
sees all delivered mail. Other folders belong to their login. A message is stored once: its flags, \\Seen being
the API's read state, and its expunging apply wherever it appears.

Answers are compared with Dovecot's (tests/imap/test_dovecot.py). Known, deliberate differences:

- Line ends. Dovecot stores messages with LF and serves every bare LF as CRLF, counting sizes after that
  conversion. mailnest serves the stored bytes as received: for a message that arrived with bare LF, literals
  carry the LF, and RFC822.SIZE, BODYSTRUCTURE sizes and <partial> ranges count stored bytes. For messages
  with CRLF line ends (what SMTP delivers) the answers are byte-identical.
- NUL bytes inside a message go out as 0x80, as Dovecot sends them (IMAP literals cannot carry NUL); the stored
  message keeps them.
- INTERNALDATE is reported in UTC (Dovecot uses the server's local zone; identical when that is UTC).
- One UID sequence serves every mailbox, so UIDNEXT can jump by more than one between appends to one mailbox;
  UIDVALIDITY is the database's creation time and the same for every mailbox.
- The hierarchy delimiter is "/" (Dovecot's maildir default is "."); INBOX cannot be renamed.
- FLAGS and PERMANENTFLAGS list the system flags and \\* only; Dovecot also lists keywords in use.
- \\Recent is kept per login and mailbox: the first session to see a message gets it.
- No CONDSTORE, QRESYNC, ESEARCH, SORT, THREAD, BINARY or other extensions beyond those above; ENABLE enables
  nothing. SEARCH accepts any charset Python can decode; text is compared after NFKD and case folding, which
  equals Dovecot's i;unicode-casemap on all the test corpus but may differ for rare characters.
- Status texts (the human part of OK/NO/BAD) differ, and no [CLIENTBUG] hints are sent.
"""

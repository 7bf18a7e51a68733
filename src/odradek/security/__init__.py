"""Security without I/O: SASL servers (PLAIN, SCRAM), the SCRAM credential store, ACLs, TLS principals.

The broker's asyncio shell (broker/server.py) moves bytes; everything that decides who a client is and
what it may do lives here, testable without sockets.
"""

"""The PyLabs agent: an XMPP client that runs tasklets and scripts sent to it as jobs."""

"""The appliance on the XMPP fabric: its controller connection and the agents' accounts."""

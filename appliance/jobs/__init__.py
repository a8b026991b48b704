"""The workflow engine: jobs for agents kept in OSIS, dispatched over the XMPP fabric, and
workflows made of them (core: the state machine; engine: the asyncio shell; flow and
workflows: ordered steps; submit: making and cancelling jobs; cli: `appliance jobs`)."""

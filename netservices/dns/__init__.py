"""Authoritative DNS for the domain and its reverse zones, forwarding the rest.

`wire` owns the codec (dnslib), `zone` the zones and their lookup, `core` turns query
bytes into reply bytes with no I/O, `cache` keeps forwarded answers for their TTL,
`forward` asks upstream resolvers, `server` is the asyncio UDP/TCP shell, and `service`
puts them together from a `DnsConfig`.
"""

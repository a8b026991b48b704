"""DHCPv4 server for PXE (RFC 2131/2132, RFC 4578)."""

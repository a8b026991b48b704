"""Read-only TFTP for first-stage boot loaders (RFC 1350, 2347-2349, 7440)."""

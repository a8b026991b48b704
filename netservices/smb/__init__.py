"""Read-only SMB2 shares of install media, on impacket."""

"""Benchmarks: each module here measures one service against its peer in the same run.

Results are printed as ratios against the peer (dnsmasq, tftpd-hpa/atftpd, Samba), never
asserted: speed is shown here, not in the tests.
"""

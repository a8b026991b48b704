"""Network services of the appliance (DHCP, DNS, TFTP, SMB) as libraries.

Each service is a pure protocol core plus a thin asyncio shell that owns the socket.
Nothing here imports ``appliance``: machines and leases are read through small
``typing.Protocol`` interfaces that the application implements.
"""

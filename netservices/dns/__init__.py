"""Authoritative DNS for the domain and its reverse zones, forwarding the rest."""

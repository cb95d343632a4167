"""Outbound calls and dialer campaigns."""

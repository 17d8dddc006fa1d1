"""Placeholder; the Dovecot fixture lands here."""

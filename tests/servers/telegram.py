"""Placeholder; the Telegram double lands here."""

"""Reputation monitor: Postfix delivery logs -> attempts -> per-operator outcomes and alerts."""

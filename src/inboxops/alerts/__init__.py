"""Alert bookkeeping every capability shares: when to repeat, when to say "resolved".

A capability (DMARC, reputation, health, list hygiene...) turns its findings into
:class:`Finding` values (kind, key, magnitude) and asks :func:`plan` which to send now; after a
channel accepted the message it records them with :mod:`inboxops.alerts.state`. The policy:
a new finding is sent at once; a known one again after ``repeat_hours`` or as soon as its
magnitude doubled; a finding that was sent and no longer holds gets one "resolved" line. State
is written only after delivery, so a failed delivery is retried on the next run.
"""

from inboxops.alerts.policy import Finding, Plan, Sent, due, plan

__all__ = ["Finding", "Plan", "Sent", "due", "plan"]  # deliver/state import the database

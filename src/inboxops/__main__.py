"""`python -m inboxops` runs the same CLI as the `inboxops` console script."""

from __future__ import annotations

from inboxops.cli import main

if __name__ == "__main__":
    main()

"""The C modules' build step; everything else about the package is in pyproject.toml.

- ``inboxops.reputation._scan`` is the Postfix log parser's hot loop (see its header and
  docs/architecture.md); without it the Python loop reads every line, at a third of the speed.
- ``inboxops.reputation._digest`` computes the reputation store's 64-bit keys (BLAKE2b);
  without it hashlib does, and a big ingest's readers take a little longer.
- ``inboxops.dmarc._walk`` reads one DMARC ``<record>`` from the tree lxml built; without it
  records.record_values reads every record, and a large report imports at half the speed.

All are optional: where no C compiler is at hand the install goes on without them.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "inboxops.reputation._scan",
            sources=["src/inboxops/reputation/_scan.c"],
            depends=[
                "src/inboxops/reputation/_scan_match.h",
                "src/inboxops/reputation/_scan_records.h",
            ],
            optional=True,
        ),
        Extension(
            "inboxops.reputation._digest",
            sources=["src/inboxops/reputation/_digest.c"],
            optional=True,
        ),
        Extension(
            "inboxops.dmarc._walk",
            sources=["src/inboxops/dmarc/_walk.c"],
            optional=True,
        ),
    ]
)

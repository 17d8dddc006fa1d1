"""The one C module's build step; everything else about the package is in pyproject.toml.

``inboxops.reputation._scan`` is the Postfix log parser's hot loop in C (see its header and
docs/architecture.md). It is optional: where no C compiler is at hand the install goes on and
the Python loop reads every line, at a third of the speed.
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
        )
    ]
)

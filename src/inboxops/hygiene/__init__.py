"""List hygiene: the addresses we must not mail, taken off listmonk lists.

* :mod:`.exclusions` (pure): the exclusion rules (a domain, ``*.`` subdomains, ``operator:``)
  and which one an address matches.
* :mod:`.sources`: the rules from ``[exclusions]`` and its files, checked against the operator
  table; which instances and excluded operators a command names.
* :mod:`.scrub`: ``inboxops listmonk scrub``, blocklisting every enabled subscriber an
  exclusion rule matches, and the domain blocklist sync.
* :mod:`.prune`: ``inboxops listmonk prune``, unsubscribing from warmup lists the subscribers
  whose domain's MX is now at an excluded operator.
* :mod:`.instances`: one job on every listmonk instance, a failing one never stopping the rest.
* :mod:`.progress`: the progress line a terminal shows during a long scrub or prune.
* :mod:`.store`: the removals log (``list_removals``) and the MX history prune reads.
"""

"""Sample data for `inboxops demo`, the tests and the benchmarks, made by our own generator."""

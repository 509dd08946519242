"""Fault-injection harness: seeded workloads and faults, then nine invariants (issue 6)."""

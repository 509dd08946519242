"""Test helpers shared by the integration tests and the chaos harness."""

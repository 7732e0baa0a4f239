"""Test harness: coordinators on a background loop or in a real process, fault
scenarios, a software TPM, a local torchrun job and an in-memory cluster
simulator. Used by tests and benchmarks; never shipped in the wheel."""

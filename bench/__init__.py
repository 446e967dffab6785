"""Benchmarks (`make bench`): each workload beside a baseline measured in the same run."""

"""Benchmarks: what each mode costs, measured on the machine in front of you."""

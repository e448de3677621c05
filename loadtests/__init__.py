"""Load tests and benchmarks: a device-fleet generator, a naive baseline ingestor, scenarios.

`factory5g bench <scenario>` runs one scenario end to end on servers of its own and writes
`loadtests/results/<scenario>-<timestamp>/{result.json,report.md,*.png}`; see
docs/benchmarks.md for the method and what each figure means.
"""

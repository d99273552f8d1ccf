"""`dogsearch bench`: throughput and latency measured on this machine, as ratios against the bare model or store
in the same run. Each benchmark module has run(quick: bool) -> dict of its keys."""

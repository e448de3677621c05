"""OEE per ISO 22400-2: settings, summary, downtime Pareto and per-shift trend."""

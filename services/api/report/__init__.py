"""Evidence report (KPIs, OEE, 5G scorecard, alarms, loss ledger) and CSV exports."""

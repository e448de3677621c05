"""The audit trail: who did what to which target, written in the transaction of the act."""

"""The notifier: alarm transitions from the durable outbox to people.

`router` turns each outbox item (written by a trigger in the alarm transition's own
transaction) into one delivery per matching route; `dispatcher` claims due deliveries
(`FOR UPDATE SKIP LOCKED`, with a lease so a dead notifier's claims are taken over),
sends them through the channel `registry` and records the outcome with retries and a
give-up time; `escalation` enqueues policy steps and reminders for unacknowledged alarms.
See docs/notifications.md.
"""

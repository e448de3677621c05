"""Notification channels: what an alarm notification says and how each receiver wants it.

`message` holds the one description of a notification (`AlarmNotice`) and of a delivery's
result (`Outcome`); `templates` renders a notice in English or Chinese; `channels/` formats,
signs and sends it for one kind of receiver each (e-mail, webhook, WeCom, DingTalk, Feishu,
MQTT). The notify service decides *what* to send and *when* (outbox, routes, escalation);
the API validates channel settings with the same models. Nothing here reads the database.
"""

"""The plant dashboard's server side: live alarm stream, page summaries, security headers."""

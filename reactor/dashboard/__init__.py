"""What ops watch: the `/admin` dashboard (`views.py`, `templates/admin/`) and the Prometheus
metrics on `/metrics` (`metrics.py`: facts read from Redis at scrape time)."""

"""What ops watch: the `/admin` dashboard (`views.py`, `templates/admin/`) and the Prometheus
metrics on `/metrics` (`metrics.py`: facts read from Redis at scrape time).

`diff.py` adds `/admin/rules/diff` to the dashboard's blueprint; importing it here puts its routes
on the blueprint before `init_admin` registers it."""

from . import diff  # noqa: F401  (registers /admin/rules/diff on the admin blueprint)

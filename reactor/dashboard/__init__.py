"""What ops watch: the `/admin` dashboard (`views.py`, `templates/admin/`) and the Prometheus
metrics on `/metrics` (`metrics.py`: facts read from Redis at scrape time).

`diff.py` adds `/admin/rules/diff` to the dashboard's blueprint; importing it here puts its routes
on the blueprint before `init_admin` registers it; `undo.py` adds the Undo of a write-off and
`held.py` the Release of a held one the same way; `approvals.py` the approvals queue; `recover.py` the
Recover of money paid after one."""

from . import (
    approvals,  # noqa: F401  (registers /admin/approvals and its Approve / Decline on the admin blueprint)
    diff,  # noqa: F401  (registers /admin/rules/diff on the admin blueprint)
    held,  # noqa: F401  (registers /admin/held/<id>/release on the admin blueprint)
    recover,  # noqa: F401  (registers /admin/invoices/<id>/recover on the admin blueprint)
    trace,  # noqa: F401  (registers /admin/invoices/<id>, an invoice's timeline, on the admin blueprint)
    undo,  # noqa: F401  (registers /admin/invoices/<id>/undo on the admin blueprint)
)

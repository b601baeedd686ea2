"""What people run from the CLI, the dashboard and cron: it reads what the jobs wrote and acts on
it. It sits below the CLI and the dashboard and above the jobs; no worker imports it.

rules_diff.py, diff_formats.py  `reactor rules diff`, and its text, csv, json and markdown
replay.py                       which stored events `reactor events replay` selects
undo.py                         `reactor undo`: remove our write-off's credit note, and hold
notify.py, http_deadline.py     the digest `reactor cron` sends, its POST bounded as a whole
deadletters/                    RQ's failed jobs as on-call reads them: list, show, replay, purge
trace/                          an invoice's story read back, in order
invoice_state.py                an invoice's standing in one line, and its status at Chargebee now
tally.py                        counters folded from the audit stream (/metrics, chart, digest)
"""

"""What people run from the CLI, the dashboard and cron: it reads what the jobs wrote and acts on
it, and no worker imports it."""

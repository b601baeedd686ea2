"""chargebee-reactor: Chargebee invoice and dunning webhooks in, rule-driven write-offs out."""

__version__ = "0.1.0"

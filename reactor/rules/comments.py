"""Write-off comment templates: checked at load time, rendered per decision.

Chargebee stores the comment on the invoice (max 300 characters, internal). A template error
found only when money is about to move would be too late, so placeholders are checked when the
file loads and rendering can then never fail.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from .fields import did_you_mean

PLACEHOLDERS = ("rule", "invoice_id", "customer_id", "amount_due", "currency", "days_overdue", "event_type")
MAX_COMMENT = 300
DEFAULT_COMMENT = "Written off by chargebee-reactor rule {rule}"


def template_problems(template: str) -> list[str]:
    """One sentence per problem in a comment template (empty when it is fine)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"the comment has broken braces ({exc}); write {{{{ and }}}} for literal braces"]
    problems = []
    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            shown = "{" + name + "}"
            problems.append(
                f"unknown placeholder {shown} in the comment; use {known}{did_you_mean(name, PLACEHOLDERS)}"
            )
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format (such as :>10 or !r) in a comment")
    if len(template) > MAX_COMMENT:
        problems.append(f"the comment is {len(template)} characters long; Chargebee accepts at most {MAX_COMMENT}")
    return problems


def render(template: str | None, values: Mapping[str, str]) -> str:
    """The comment text, cut to Chargebee's 300-character limit."""
    text = (template or DEFAULT_COMMENT).format_map(values)
    return text[:MAX_COMMENT]

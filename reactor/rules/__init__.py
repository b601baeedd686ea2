"""The rules engine: load and validate rules.yaml, then decide what to do with an event.

Pure: no Redis, no HTTP, no environment. `load_rules` refuses a file with any problem (all of
them reported, each at file:line:col); `decide` is a fast pure function of (rules, event, now).
"""

from .engine import decide
from .event_types import (
    CHARGEBEE_EVENT_TYPES,
    INVOICE_EVENT_TYPES,
    INVOICELESS_EVENT_TYPES,
    KNOWN_EVENT_TYPES,
    SWEEP_EVENT_TYPE,
)
from .explain import ConditionTrace, Explanation, RuleTrace, explain, format_explanation
from .loader import load_rules, parse_rules
from .model import Decision, Limits, Rule, RuleSet
from .money import to_major
from .problems import ProblemKind, RuleProblem, RulesError
from .timing import earliest_match, earliest_recheck

__all__ = [
    "CHARGEBEE_EVENT_TYPES",
    "INVOICELESS_EVENT_TYPES",
    "INVOICE_EVENT_TYPES",
    "KNOWN_EVENT_TYPES",
    "SWEEP_EVENT_TYPE",
    "ConditionTrace",
    "Decision",
    "Explanation",
    "Limits",
    "ProblemKind",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RuleTrace",
    "RulesError",
    "decide",
    "earliest_match",
    "earliest_recheck",
    "explain",
    "format_explanation",
    "load_rules",
    "parse_rules",
    "to_major",
]

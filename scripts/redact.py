"""Masking of secrets in text fleet writes down: drift reports, their raw logs, and
anything else a run prints. What looks like a secret's value is replaced by ********:

- a JSON key (also inside a JSON string) or a YAML/INI/env key (``key: v``, ``key=v``, ``"key": "v"``) whose name
  contains password, passwd, pwd, secret, token, key, auth, credential or dsn;
- the password of a URL (``postgresql://user:pw@host``);
- the password field of a ``.pgpass`` line (``host:port:db:user:password``);
- an SQL ``PASSWORD '...'`` literal.

It errs on the side of masking: a masked word that was not a secret costs a
reader a little; a secret in a report cannot be taken back.
"""

from __future__ import annotations

import re

MASK = "********"

_WORDS = r"(?:password|passwd|pwd|secret|token|key|auth|credential|dsn)"
_KEY = rf"[A-Za-z0-9_.-]*{_WORDS}[A-Za-z0-9_.-]*"
_VALUE = r"""("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;&'"}\]]+)"""

_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)@")
_JSON = re.compile(rf'(?i)("{_KEY}"\s*:\s*){_VALUE}')
# JSON inside a JSON string, as a result's msg shows it: {\"password\": \"...\"}.
_JSON_ESCAPED = re.compile(rf'(?i)(\\"{_KEY}\\"\s*:\s*\\")((?:[^"\\\n]|\\(?!"))*)(?=\\")')
# Not preceded by a word character or a quote: JSON keys are the pattern above's.
_ASSIGN = re.compile(rf"""(?i)(?<![\w"'])({_KEY}\s*[=:]\s*){_VALUE}""")
_PGPASS = re.compile(r"(?m)^([-+ ]?\s*[^:\s#][^:\s]*:(?:[0-9]+|\*):[^:\s]+:[^:\s]+:)(\S.*)$")
_SQL = re.compile(r"(?i)\b(password\s+)('(?:[^'\n]|'')*')")


def _masked(value: str) -> str:
    """The mask, inside the value's own quotes if it had them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def _sub(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: m.group(1) + (m.group(2) if m.group(2) == MASK else _masked(m.group(2))), text)


def redact(text: str) -> str:
    """``text`` with every value that looks like a secret masked."""
    text = _URL.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _sub(_PGPASS, text)
    text = _sub(_SQL, text)
    text = _sub(_JSON_ESCAPED, text)
    text = _sub(_JSON, text)
    return _sub(_ASSIGN, text)

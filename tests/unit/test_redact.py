"""Secrets are masked in every form a log or a report shows them (scripts/redact.py)."""

from __future__ import annotations

import pytest

from scripts.redact import MASK, redact

SECRET = "Zq8-s3cret"


@pytest.mark.parametrize(
    ("form", "text"),
    [
        ("JSON", f'{{"password": "{SECRET}", "user": "app_rw"}}'),
        ("JSON, any key with the word", f'"app_db_write_password": "{SECRET}",'),
        ("JSON, escaped quote inside", f'"token": "{SECRET}\\"x"'),
        ("JSON, a number", '"api_key": 123456789'),
        ("JSON inside a JSON string", f'"msg": "{{\\"password\\": \\"{SECRET}\\"}} and more"'),
        ("YAML", f"postgresql_replication_password: {SECRET}"),
        ("YAML, quoted", f"  db_secret: '{SECRET}'"),
        ("YAML in a diff", f"+    credentials: {SECRET}"),
        ("key=value", f"PGPASSWORD={SECRET} psql -h primary"),
        ("env file", f'APP_DB_WRITE_PASSWORD="{SECRET}"'),
        ("libpq DSN", f"host=primary port=5432 password={SECRET} dbname=app"),
        ("URL", f"postgresql://app_rw:{SECRET}@primary:5432/app"),
        ("URL, https", f"fetching https://deploy:{SECRET}@artifacts.example/app.tar.gz"),
        ("pgpass", f"primary:5432:replication:replicator:{SECRET}"),
        ("pgpass in a diff", f"+*:*:app:app_ro:{SECRET}"),
        ("SQL", f"ALTER ROLE app_rw PASSWORD '{SECRET}'"),
        ("auth header", f"Authorization: {SECRET}"),
        ("token with spaces around =", f"vault_token = {SECRET}"),
    ],
)
def test_each_form_is_masked(form, text):
    masked = redact(text)
    assert SECRET not in masked, (form, masked)
    assert MASK in masked, (form, masked)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{{"password": "{SECRET}"}}', f'{{"password": "{MASK}"}}'),
        (f"db_password: '{SECRET}'", f"db_password: '{MASK}'"),
        (f"postgresql://app_rw:{SECRET}@primary/app", f"postgresql://app_rw:{MASK}@primary/app"),
        (f"primary:5432:app:app_rw:{SECRET}", f"primary:5432:app:app_rw:{MASK}"),
        (f"host=p password={SECRET} dbname=app", f"host=p password={MASK} dbname=app"),
    ],
)
def test_only_the_value_is_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '"mode": "0644",',
        "TASK [postgresql : replica | Store the replication password for the postgres account] ***",
        "ok: [web1] => (item=/etc/sudoers.d/intruder)",
        "https://primary:5432/app",
        "Wednesday 02 December 2026  05:03:02 +0000 (0:00:00.123)       0:00:10.456 ***",
        "echo '# hand edit' >> /etc/haproxy/haproxy.cfg",
        '-    "path": "/var/lib/postgresql/.pgpass",',
    ],
)
def test_what_is_not_a_secret_is_left_alone(text):
    assert redact(text) == text


def test_masking_twice_changes_nothing_more():
    text = f'password={SECRET} "token": "{SECRET}" postgresql://u:{SECRET}@h/db'
    assert redact(redact(text)) == redact(text)

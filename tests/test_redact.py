"""Secrets stay out of what is logged: URI passwords and secret-looking override values."""

from tssweep.redact import redact_overrides, redact_uri


def test_a_uri_password_is_masked_and_the_rest_kept():
    assert redact_uri("postgresql+psycopg://me:s3cr3t@db.example.org:5432/optuna") == \
        "postgresql+psycopg://me:***@db.example.org:5432/optuna"
    assert redact_uri("sqlite:////tmp/optuna.db") == "sqlite:////tmp/optuna.db"
    assert redact_uri("http://user@host/x") == "http://user@host/x"  # no password, nothing to hide


def test_secret_looking_overrides_are_masked():
    assert redact_overrides(["tracking.password=hunter2", "+db.api_key=abc", "model.depth=4",
                             "hydra.sweeper.storage=postgresql://a:b@h/o"]) == \
        ["tracking.password=***", "+db.api_key=***", "model.depth=4",
         "hydra.sweeper.storage=postgresql://a:***@h/o"]

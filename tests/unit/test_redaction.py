"""The one redaction rule for arguments, commands and parameters (issue 25 F11)."""

from __future__ import annotations

import pytest

from slsa_dist.model._statement import REDACTED, redact_arguments, redact_parameters

T = "s3cr3tT0k3n"


@pytest.mark.parametrize(("before", "after"), [
    ([f"--hf-token={T}"], [f"--hf-token={REDACTED}"]),
    (["--hf-token", T, "--epochs", "2"], ["--hf-token", REDACTED, "--epochs", "2"]),
    ([f"HF_TOKEN={T}", "python", "t.py"], [f"HF_TOKEN={REDACTED}", "python", "t.py"]),
    ([f"+model.api_key={T}"], [f"+model.api_key={REDACTED}"]),
    (["--db-password", T], ["--db-password", REDACTED]),
    ([f"--AWS_SECRET_ACCESS_KEY={T}"], [f"--AWS_SECRET_ACCESS_KEY={REDACTED}"]),
    ([f"--apiKey={T}"], [f"--apiKey={REDACTED}"]),
    (["--credentials", T], ["--credentials", REDACTED]),
    ([f"--data=https://user:{T}@host.example/d.tar?X-Amz-Signature={T}"],
     ["--data=https://host.example/d.tar"]),
    ([f"https://x:{T}@git.example/r.git"], ["https://git.example/r.git"]),
    ([f"--urls=s3://b/a?sig={T},https://h/b?t={T}"], ["--urls=s3://b/a,https://h/b"]),
    # names that do not say so are kept: a tokenizer is no token, max tokens a count
    (["--tokenizer", "gpt2", "--max-tokens", "512", "--epochs", "2"],
     ["--tokenizer", "gpt2", "--max-tokens", "512", "--epochs", "2"]),
    # a value-less flag before another flag takes nothing from it
    (["--use-auth-token", "--epochs", "2"], ["--use-auth-token", "--epochs", "2"]),
    (["a=b", "--lr=0.1", "file:///data/x"], ["a=b", "--lr=0.1", "file:///data/x"]),
])
def test_redact_arguments(before: list[str], after: list[str]) -> None:
    assert redact_arguments(before) == after
    assert redact_arguments(after) == after  # idempotent: the coordinator applies it again


def test_redact_parameters_applies_the_same_rule_everywhere() -> None:
    parameters = {
        "entryPoint": "train.py", "worldSize": 2,
        "arguments": ["--hf-token", T, f"--data=https://u:{T}@h/x?s={T}"],
        "command": ["env", f"HF_TOKEN={T}", "python", "t.py"],
        "hyperparameters": {"lr": "0.1", "wandb_api_key": T, "tokenizer": "gpt2",
                            "source": f"https://u:{T}@h/x"},
        "env": {"HF_TOKEN": T, "SEED": 3},
    }
    redacted = redact_parameters(parameters)
    assert T not in repr(redacted)
    assert redacted["worldSize"] == 2
    assert redacted["arguments"] == ["--hf-token", REDACTED, "--data=https://h/x"]
    assert redacted["command"] == ["env", f"HF_TOKEN={REDACTED}", "python", "t.py"]
    assert redacted["hyperparameters"] == {"lr": "0.1", "wandb_api_key": REDACTED,
                                           "tokenizer": "gpt2", "source": "https://h/x"}
    assert redacted["env"] == {"HF_TOKEN": REDACTED, "SEED": 3}


def test_credentials_under_short_or_header_names_are_redacted_too() -> None:
    """Found by an independent review: --passphrase, --auth "Bearer ...", --pwd,
    DB_PASS=..., --cookie and --authorization were signed verbatim."""
    assert redact_arguments(["--passphrase", "hunter2", "--auth", "Bearer sk-live-abc",
                             "--pwd", "p4ss", "DB_PASS=s3cr3t", "--cookie", "session=abc",
                             "--authorization=xyz"]) == [
        "--passphrase", REDACTED, "--auth", REDACTED, "--pwd", REDACTED,
        f"DB_PASS={REDACTED}", "--cookie", REDACTED, f"--authorization={REDACTED}"]
    # words that only contain those are no secret names
    assert redact_arguments(["--bypass-cache", "yes", "--author", "ada", "--oauth-scope",
                             "read"]) == ["--bypass-cache", "yes", "--author", "ada",
                                          "--oauth-scope", "read"]

"""``infoae theory``: the table and the compiler on the command line."""

from __future__ import annotations

import json

import pytest

from infoae_pl.objectives.cli import theory_main

ISSUE = ["--term", "I_q=-0.5", "--term", "KL(q(x|z)||p(x|z))=1", "--term", "KL(q(z)||p(z))=1.5"]


def test_compile_json_on_the_issue_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(["compile", *ISSUE, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    result = json.loads(out)
    assert {"member", "constraint_set", "class", "tractable_form", "preset"} <= set(result)
    assert result["member"] is True
    assert result["constraint_set"] == "C3"
    assert result["class"] == "unary-likelihood-free"
    assert result["tractable_form"] == {
        "E_q[log p(x|z)]": -1.0,
        "E_q[log q(z|x)]": 0.5,
        "E_q[log p(z)]": -0.5,
        "KL(q(z)||p(z))": 1.0,
    }
    assert result["preset"] == {"name": "infovae", "params": {"alpha": -0.5, "lambda1": 1.5, "lambda2": 0.0}}


def test_compile_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(["compile", *ISSUE]) == 0
    out = capsys.readouterr().out
    assert "unary-likelihood-free" in out
    assert "-E_q[log p(x|z)] + 0.5*E_q[log q(z|x)] - 0.5*E_q[log p(z)] + KL(q(z)||p(z))" in out
    assert "infovae(alpha=-0.5, lambda1=1.5, lambda2=0)" in out


def test_compile_preset_with_params_and_extra_terms(capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(["compile", "--preset", "beta_elbo", "--param", "beta=0.5"]) == 0
    out = capsys.readouterr().out
    assert "likelihood-based" in out and "beta_elbo(beta=0.5)" in out
    assert "-E_q[log p(x|z)] + 0.5*E_q[log q(z|x)] - 0.5*E_q[log p(z)]" in out
    assert theory_main(["compile", "--preset", "alice", "--term", "KL(q(z)||p(z))=2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["class"] == "binary-likelihood-free" and result["preset"] is None


def test_compile_intractable_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(["compile", "--term", "JS(q(x|z)||p(x|z))=1", "--term", "I_q=-1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["class"] == "intractable"
    assert result["tractable_form"] is None
    assert result["uncovered_terms"] == ["JS(q(x|z)||p(x|z))"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["compile", "--term", "KL(a||b)=1"], "valid terms: I_p, I_q, KL(p(x,z)||q(x,z))"),
        (["compile", "--term", "I_q"], "NAME=COEFFICIENT"),
        (["compile", "--term", "I_q=x"], "not a number"),
        (["compile", "--preset", "beta_elbo", "--param", "gamma=1"], "its parameters: beta"),
        (["compile", "--param", "beta=1"], "--param needs --preset"),
        (["compile"], "at least one --term"),
        (["compile", "--preset", "vae"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(argv) == 2
    assert needle in capsys.readouterr().err


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert theory_main(["table"]) == 0
    out = capsys.readouterr().out
    assert "(T_blf + P) ∩ (R + P)" in out
    assert [line.split()[-1] for line in out.strip().splitlines()[1:]] == ["13", "13", "17", "17", "18", "18"]
    assert theory_main(["table", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["dimension"] for r in rows] == [13, 13, 17, 17, 18, 18]

"""Priors through the command line: `validate` refuses a prior the model does not have, and
`validate --prior-check` says whether the priors put the target's scale in range."""

from conversionflow_dagster.core.model.priors import PRIORS
from conversionflow_tests.conftest import write_config
from conversionflow_tests.orchestration.test_cli_errors import cli, make_home


def test_validate_refuses_an_unknown_prior_naming_the_file_and_the_key(tmp_path):
    make_home(tmp_path)
    write_config(tmp_path, "typo.yaml", **{"model.priors": {"adstok_decay": {"rate": 2}}})
    write_config(tmp_path, "param.yaml", **{"model.priors": {"intercept": {"mean": 0.8}}})
    write_config(tmp_path, "negative.yaml", **{"model.priors": {"hill_k": {"rate": -1}}})

    typo = cli(tmp_path, "validate", "--config", "configs/typo.yaml")
    assert typo.returncode == 1 and typo.stdout == ""
    assert "Traceback" not in typo.stderr
    assert f"{tmp_path / 'configs' / 'typo.yaml'}: invalid configuration" in typo.stderr
    assert "model.priors.adstok_decay: unknown prior 'adstok_decay'" in typo.stderr
    assert f"valid names: {', '.join(PRIORS)}" in typo.stderr

    param = cli(tmp_path, "validate", "--config", "configs/param.yaml")
    assert param.returncode == 1
    assert "model.priors.intercept: unknown parameter(s) ['mean']" in param.stderr
    assert "valid: loc, scale" in param.stderr

    negative = cli(tmp_path, "validate", "--config", "configs/negative.yaml")
    assert negative.returncode == 1
    assert "model.priors.hill_k.rate: rate must be above 0, got -1" in negative.stderr


def test_prior_check_on_the_sample_finds_the_defaults_in_range(project):
    make_home(project)
    result = cli(project, "validate", "--prior-check")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "weekly_panel: prior predictive check of conversions: 500 draws over" in out
    assert "min / 3%" in out and "median / 50%" in out and "max / 97%" in out
    observed = next(line for line in out.splitlines() if line.strip().startswith("observed "))
    assert len(observed.split()) == 4  # the label and three figures
    assert "observed weeks inside the prior 94% interval:" in out
    assert "verdict: the defaults put the target's scale in range" in out


def test_prior_check_says_which_prior_puts_the_target_out_of_range(project):
    make_home(project)
    write_config(project, "absurd.yaml", **{"model.priors": {"intercept": {"loc": 50}}})
    result = cli(project, "validate", "--config", "configs/absurd.yaml", "--prior-check")
    assert result.returncode == 1, result.stdout + result.stderr
    verdict = result.stdout.splitlines()[-1]
    assert verdict.startswith(
        "error: weekly_panel: prior check: the configured priors put the target too high: "
        "100% of observed weeks lie below their prior 94% interval"
    )
    assert verdict.endswith("check the override(s) model.priors.intercept")

"""Lift tests: the chi-square against scipy, the beta posterior against its closed form."""

import numpy as np
import pytest
from scipy import stats

from conversionflow_dagster.core.errors import InputDataError
from conversionflow_dagster.core.experiments.lift_tests import (
    analyse_lift_tests,
    chi_square_two_proportions,
    rate_posterior,
    read_lift_tests,
)

HEADER = "test_id,channel,start,end,test_size,test_conversions,control_size,control_conversions\n"


@pytest.mark.parametrize(
    "table",
    [(120, 1000, 100, 1000), (45, 300, 30, 310), (5, 50, 5, 50), (900, 10000, 700, 9000)],
)
def test_chi_square_matches_scipy(table):
    tc, tn, cc, cn = table
    ours = chi_square_two_proportions(tc, tn, cc, cn)
    chi2, p, _, _ = stats.chi2_contingency([[tc, tn - tc], [cc, cn - cc]], correction=False)
    assert ours.statistic == pytest.approx(chi2, rel=1e-10)
    assert ours.p_value == pytest.approx(p, rel=1e-10)


def test_degenerate_table_is_not_significant():
    assert chi_square_two_proportions(0, 100, 0, 100).p_value == 1.0


def test_beta_posterior_matches_its_closed_form():
    post = rate_posterior(30, 200)
    assert (post.alpha, post.beta) == (31, 171)
    assert post.mean == pytest.approx(stats.beta(31, 171).mean())
    assert post.variance == pytest.approx(stats.beta(31, 171).var())
    draws = post.sample(np.random.default_rng(0), 200_000)
    assert draws.mean() == pytest.approx(post.mean, rel=5e-3)


def test_analysis_reads_significance_and_bayesian_lift(tmp_path):
    path = tmp_path / "lift.csv"
    path.write_text(
        HEADER + "T1,search,2024-03-01,2024-03-28,5000,300,5000,220\n"
        "T2,tv,2024-04-01,2024-04-28,400,21,400,20\n"
    )
    result = analyse_lift_tests(read_lift_tests(path), seed=3).set_index("test_id")
    strong, weak = result.loc["T1"], result.loc["T2"]
    assert strong["significant_99"] and strong["p_test_better"] > 0.99
    assert strong["posterior_lift_hdi_low"] < 300 / 220 - 1 < strong["posterior_lift_hdi_high"]
    assert not weak["significant_90"] and 0.3 < weak["p_test_better"] < 0.8
    again = analyse_lift_tests(read_lift_tests(path), seed=3).set_index("test_id")
    assert again.equals(result)  # seeded


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "T1,search,2024-03-01,2024-03-28,100,120,100,5",
            r"line 2, column 'test_conversions': "
            r"expected at most test_size conversions, got '120'",
        ),
        (
            "T1,search,2024-03-01,2024-03-28,100,10,0,0",
            r"line 2, column 'control_size': "
            r"expected a non-empty control cohort",
        ),
        ("T1,search,2024-03-28,2024-03-01,100,10,100,5", r"column 'end': expected end on or after"),
    ],
)
def test_impossible_inputs_are_refused(tmp_path, row, message):
    path = tmp_path / "lift.csv"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(InputDataError, match=message):
        read_lift_tests(path)


def test_a_test_of_an_unconfigured_channel_is_refused_by_line(tmp_path):
    path = tmp_path / "lift.csv"
    path.write_text(
        "test_id,channel,start,end,test_size,test_conversions,control_size,control_conversions\n"
        "A,search,2024-01-01,2024-01-28,1000,30,1000,20\n"
        "B,radio,2024-01-01,2024-01-28,1000,30,1000,20\n"
    )
    assert len(read_lift_tests(path)) == 2  # without channels to check against, both are read
    with pytest.raises(InputDataError, match=r"lift\.csv, line 3, column 'channel'.*'radio'"):
        read_lift_tests(path, ["search", "tv"])


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ("A,search,2024-01-01,2024-01-28,1000,30,1000,20", "test_id 'A' repeats line 2"),
        ("A,tv,2024-02-01,2024-02-28,500,10,500,9", "test_id 'A' repeats line 2"),
        ("B,search,2024-01-01,2024-01-28,1000,30,1000,20", "channel 'search'.* repeats line 2"),
    ],
)
def test_a_test_listed_twice_is_refused_naming_both_lines(tmp_path, second, message):
    path = tmp_path / "lift.csv"
    path.write_text(
        HEADER + "A,search,2024-01-01,2024-01-28,1000,30,1000,20\nC,tv,2024-03-01,2024-03-28,"
        "900,40,900,30\n" + second + "\n"
    )
    with pytest.raises(InputDataError, match=rf"lift\.csv, line 4, column 'test_id': {message}"):
        read_lift_tests(path)

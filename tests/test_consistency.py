"""UniGame aggregate numbers, checked against its Table 1."""
import pytest

from tasks.consistency import consistency_score, understanding_overall, understanding_overall_from


@pytest.mark.parametrize("ub, wise, expected", [(82.77, 0.35, 63.66), (83.20, 0.37, 64.72), (85.20, 0.43, 68.32)])
def test_consistency_table1(ub, wise, expected):
    assert round(consistency_score(ub, wise), 2) == expected


def test_consistency_rejects_percent_wise_and_bad_ranges():
    with pytest.raises(ValueError, match="wise must be a fraction"):
        consistency_score(82.77, 35)
    with pytest.raises(ValueError, match="unified_bench"):
        consistency_score(120.0, 0.35)
    with pytest.raises(ValueError):
        consistency_score(float("nan"), 0.3)


def test_understanding_overall_janus_pro():
    value = understanding_overall(78.2, 41.0, 79.2, 87.4)
    assert value == pytest.approx(71.45) and round(value, 1) in (71.4, 71.5)
    assert understanding_overall_from({"vqav2": 78.2, "mmmu": 41.0, "mmbench": 79.2, "pope": 87.4}) == value
    with pytest.raises(ValueError, match="missing pope"):
        understanding_overall_from({"vqav2": 78.2, "mmmu": 41.0, "mmbench": 79.2})
    with pytest.raises(ValueError, match="percentage"):
        understanding_overall(0.782, 41.0, 79.2, 187.4)

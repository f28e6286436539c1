"""The number scorer's final-number rule, on hand-checked GSM8K-style cases."""

from decimal import Decimal

import pytest

from instructmix.evaluation.numbers import final_number, number_match


@pytest.mark.parametrize("text, want", [
    ("#### 1,234", "1234"),
    ("The answer is 1234.", "1234"),
    ("She makes 9 * 2 = $<<9*2=18>>18 a day.\n#### 18", "18"),
    ("#### 18\nQuestion: what is 20 + 1?", "18"),  # the answer line, not the last number
    ("It costs $1,234.00 in total", "1234"),
    ("pages 10-12", "12"),  # a hyphen between numbers is no minus sign
    ("It fell to -5 degrees", "-5"),
    ("#### -3.50", "-3.5"),
    ("COVID-19 case 7", "7"),
    ("1,2,3", "3"),  # commas not in thousands groups separate numbers
    ("about 50% of 3.5.", "3.5"),
])
def test_final_number(text, want):
    assert final_number(text) == Decimal(want)


def test_no_number():
    assert final_number("no digits here") is None
    assert final_number("#### none") is None


@pytest.mark.parametrize("prediction, reference, want", [
    ("The answer is 1234.", "#### 1,234", True),
    ("So she pays $18.00.", "Janet sells 9 eggs.\n#### 18", True),
    ("18.5", "#### 18", False),
    ("I think 12, not 13", "#### 12", False),  # the last number of the prediction counts
    ("I do not know", "#### 12", False),
    ("12", "no number in the reference", None),  # cannot be judged
])
def test_number_match(prediction, reference, want):
    assert number_match(prediction, reference) is want

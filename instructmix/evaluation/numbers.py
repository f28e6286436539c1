"""The `number` scorer (GSM8K-style): the final number of the generation against the final
number of the reference.

Final number of a text: the first number after its last `####` when it has one (GSM8K's
answer line), else its last number. The same rule reads the reference and the prediction, so
a model that answers "... #### 18" and then keeps generating is read at its answer line.
A number: an optional minus sign, an optional `$`, digits with optional thousands commas
(`1,234`) and an optional decimal part, not glued to a preceding letter, digit or dot (so
`10-12` reads 10 and 12, not -12). Numbers are compared as exact decimals: `1,234`, `$1234`,
`1234.` and `1234.00` are equal. Percent signs, units and words around the number are
ignored; fractions (`1/2`) and written-out numbers ("five") are not read.
"""

from __future__ import annotations

import re
from decimal import Decimal

NUMBER = re.compile(r"(?<![\w.])(-?)\$?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)")
ANSWER_LINE = "####"


def final_number(text: str) -> Decimal | None:
    """The final number of `text` (see the module docstring); None when it has none."""
    if ANSWER_LINE in text:
        found = NUMBER.search(text.rsplit(ANSWER_LINE, 1)[1])
    else:
        found = next(reversed(list(NUMBER.finditer(text))), None)
    if found is None:
        return None
    sign, digits = found.groups()
    return Decimal(sign + digits.replace(",", ""))


def number_match(prediction: str, reference: str) -> bool | None:
    """Whether the final numbers are equal; None when the reference has no number (the
    row cannot be judged), False when only the prediction has none."""
    want = final_number(reference)
    if want is None:
        return None
    got = final_number(prediction)
    return got is not None and got == want

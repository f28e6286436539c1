"""IFEval rule checks: every covered instruction id follows and breaks on hand-made
responses; uncovered ids are reported, never passed."""

import json

import pytest

from instructmix.data.eval_fields import IFEVAL_ARGS
from instructmix.evaluation.ifeval import CHECKS, NOT_COVERED, check_instructions, sentences
from instructmix.evaluation.summary import summarise
from tests.conftest import SHARED_DATA

# id -> (kwargs, a response that follows it, a response that does not)
CASES = {
    "change_case:capital_word_frequency": (
        {"capital_frequency": 2, "capital_relation": "at least"}, "THE CAT is HERE",
        "The CAT is here"),
    "change_case:english_capital": ({}, "ALL CAPS, HERE.", "All caps"),
    "change_case:english_lowercase": ({}, "all lower here.", "all Lower"),
    "combination:repeat_prompt": ({"prompt_to_repeat": "Write a poem."},
                                  "write a poem. Roses are red", "Roses. Write a poem."),
    "combination:two_responses": ({}, "Answer one.\n******\nAnswer two.",
                                  "Same.\n******\nSame."),
    "detectable_content:number_placeholders": ({"num_placeholders": 2},
                                               "Dear [name], at [address]", "Dear [name]"),
    "detectable_content:postscript": ({"postscript_marker": "P.S."}, "Hi.\nP.S. see you",
                                      "Hi. PS see you"),
    "detectable_format:constrained_response": ({}, "My answer is yes.", "Yes."),
    "detectable_format:json_format": ({}, '```json\n{"a": 1}\n```', '{"a": 1'),
    "detectable_format:multiple_sections": ({"num_sections": 2, "section_spliter": "SECTION"},
                                            "SECTION 1\nfoo\nSECTION 2\nbar",
                                            "SECTION 1\nfoo"),
    "detectable_format:number_bullet_lists": ({"num_bullets": 2}, "* one\n* two",
                                              "* one\n* two\n- three"),
    "detectable_format:number_highlighted_sections": ({"num_highlights": 2},
                                                      "*one* and **two**", "*one* and ** **"),
    "detectable_format:title": ({}, "<<My Title>>\ntext", "<< >> text"),
    "keywords:existence": ({"keywords": ["cat", "dog"]}, "A Cat and a dog", "A cat only"),
    "keywords:forbidden_words": ({"forbidden_words": ["bad"]}, "a badge is fine",
                                 "that is BAD."),
    "keywords:frequency": ({"keyword": "sun", "frequency": 2, "relation": "at least"},
                           "sun, Sun", "sun"),
    "keywords:letter_frequency": ({"letter": "z", "let_frequency": 2,
                                   "let_relation": "less than"}, "zoo", "Zzz"),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        'First part.\n\n"Then, more.', "First part.\n\nNext, more."),
    "length_constraints:number_paragraphs": ({"num_paragraphs": 2}, "One.\n***\nTwo.",
                                             "One.\n***\n\n***\nTwo."),
    "length_constraints:number_sentences": ({"num_sentences": 3, "relation": "less than"},
                                            "One. Two!", "One. Two? Three."),
    "length_constraints:number_words": ({"num_words": 3, "relation": "at least"},
                                        "one two three", "one, two"),
    "punctuation:no_comma": ({}, "no commas here", "a, b"),
    "startend:end_checker": ({"end_phrase": "Any other questions?"},
                             'Text. Any other questions?"', "Any other questions? Text."),
    "startend:quotation": ({}, '"quoted"', 'quoted"'),
}


def test_every_ifeval_id_but_language_is_covered_and_tested():
    assert NOT_COVERED == ["language:response_language"]
    assert set(CHECKS) == set(IFEVAL_ARGS) - {"language:response_language"} == set(CASES)


@pytest.mark.parametrize("iid", sorted(CASES))
def test_check_follows_and_breaks(iid):
    kwargs, good, bad = CASES[iid]
    assert set(kwargs) == set(IFEVAL_ARGS[iid])  # the arguments the pool stage accepts
    assert check_instructions(good, [iid], [kwargs]) == [True]
    assert check_instructions(bad, [iid], [kwargs]) == [False]


def test_relations_and_markers_both_ways():
    freq = {"keyword": "sun", "frequency": 2, "relation": "less than"}
    assert check_instructions("sun", ["keywords:frequency"], [freq]) == [True]
    assert check_instructions("sun sun", ["keywords:frequency"], [freq]) == [False]
    pps = {"postscript_marker": "P.P.S"}
    assert CHECKS["detectable_content:postscript"]("Hi\np.p.s. later", pps)
    assert not CHECKS["detectable_content:postscript"]("Hi\nP.S. later", pps)
    assert sentences("Mr. Smith came. Did he?  Yes!") == ["Mr.", "Smith came.", "Did he?",
                                                          "Yes!"]  # a regex splitter


def test_uncovered_ids_are_counted_not_passed():
    ids = ["punctuation:no_comma", "language:response_language", "startend:quotation"]
    kwargs = [{}, {"language": "de"}, {}]
    followed = check_instructions("plain text", ids, kwargs)
    assert followed == [True, None, False]
    scored = [
        {"id": "a", "category": "ifeval", "scorer": "ifeval", "loss": None,
         "token_accuracy": None, "prediction": "plain text", "correct": False,
         "reference": "rules",
         "instructions": [{"id": i, "followed": f} for i, f in zip(ids, followed, strict=True)]},
        {"id": "b", "category": "ifeval", "scorer": "ifeval", "loss": None,
         "token_accuracy": None, "prediction": "x", "correct": None, "reference": "rules",
         "instructions": [{"id": "language:response_language", "followed": None}]},
        {"id": "c", "category": "qa", "scorer": "exact", "loss": 1.0, "token_accuracy": 0.5,
         "prediction": "x", "correct": True, "reference": "answer"}]
    pc = summarise(scored)["per_category"]
    # b has no covered instruction: not judged, its id counted
    assert pc["ifeval"]["judged"] == 1 and pc["ifeval"]["exact_match"] == 0.0
    assert pc["ifeval"]["instruction_accuracy"] == 0.5
    assert pc["ifeval"]["instructions_checked"] == 2
    assert pc["ifeval"]["uncovered"] == {"language:response_language": 2}
    assert pc["ifeval"]["loss"] is None and pc["ifeval"]["scorer"] == "ifeval"
    assert pc["qa"]["scorer"] == "exact" and "uncovered" not in pc["qa"]


def test_real_ifeval_file_has_only_known_ids():
    path = SHARED_DATA / "ifeval" / "input_data.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is absent (public data beside the project, not in it)")
    ids = {i for line in path.read_text().splitlines()
           for i in json.loads(line)["instruction_id_list"]}
    assert ids == set(IFEVAL_ARGS)

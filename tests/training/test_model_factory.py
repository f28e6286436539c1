"""The run's own tokenizers cover what augmentation and eval sets bring, not only the pool."""

import string

from instructmix.training.model_factory import train_tokenizer
from tests.conftest import rows_of_testbed


def test_char_vocabulary_covers_printable_ascii_beyond_the_pool():
    train, _ = rows_of_testbed(0, 20, 0)  # single tasks only: no chain separator "|"
    texts = [m["content"] for row in train for m in row["messages"]]
    assert not any("|" in t for t in texts)
    tok = train_tokenizer(texts, "char", 512)
    chain_answer = "cba | CBA | ABC"  # a testbed chain's answer, steps joined by " | "
    ids = tok(chain_answer, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == chain_answer
    ids = tok(string.printable, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and tok.decode(ids) == string.printable
    assert tok("é", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]  # not ASCII


def test_byte_level_bpe_has_no_unknown_characters():
    tok = train_tokenizer(["reverse: abc", "upper: abc"], "bpe", 300)
    for text in ("cba | CBA", "déjà vu → ok"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == text

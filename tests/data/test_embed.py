"""Token counts of pool rows: whole texts, however long, without a console warning."""

from instructmix.data.embed import count_tokens, counting_tokenizer


def test_texts_longer_than_the_embedder_reads_are_counted_whole_and_quietly(capfd):
    tok = counting_tokenizer("minilm", None)
    short, long = "two words", " ".join(["word"] * 2 * tok.model_max_length)
    counts = count_tokens(tok, [short, long])
    assert counts[0] == len(tok.tokenize(short))
    assert counts[1] == 2 * tok.model_max_length  # one token per "word": not truncated
    assert "longer than the specified maximum" not in "".join(capfd.readouterr())

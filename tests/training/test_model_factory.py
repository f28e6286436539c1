"""The run's own tokenizers cover what augmentation and eval sets bring, not only the pool;
a built model is recorded relative to the run folder."""

import shutil
import string

import pyarrow as pa
import pyarrow.parquet as pq
from transformers import AutoConfig

from instructmix.config import ModelConfig
from instructmix.layout import MODEL, POOL, RunLayout
from instructmix.training.model_factory import make_model, train_tokenizer
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


def test_a_built_model_is_found_after_the_run_folder_moves(tmp_path):
    train, _ = rows_of_testbed(0, 5, 0)
    layout = RunLayout(tmp_path / "a")
    shards = layout.writable(POOL.shards)
    shards.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([{"messages": r["messages"]} for r in train]),
                   shards / "part-0.parquet")
    mc = ModelConfig(n_layer=1, n_embd=16, n_head=2, max_positions=32)
    make_model(mc, layout, MODEL.info, MODEL.hf, 0)
    shutil.move(tmp_path / "a", tmp_path / "b")  # or pulled into another machine's mirror
    moved = RunLayout(tmp_path / "b")
    assert moved.read_json(MODEL.info)["path"] == "model/hf"
    assert moved.model_path() == str(tmp_path / "b" / "model" / "hf")
    assert AutoConfig.from_pretrained(moved.model_path()).n_layer == 1
    assert moved.probe_model()["path"] == moved.model_path()  # no proxy: the target

"""LoRA: only adapters train, and the merged export computes what the adapted model does."""

import pyarrow as pa
import pytest
import torch
from transformers import AutoModelForCausalLM

from instructmix.config import LoraConfig, ModelConfig, TrainConfig
from instructmix.training.engine import Engine
from instructmix.training.loop import InProcessContext, LoopSpec, sft
from instructmix.training.lora import add_adapters, check_adapters
from instructmix.training.model_factory import build_model, train_tokenizer

ROWS = [[{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}]
        for w in ["sun", "moon", "star", "sky", "sea", "rain", "wind", "snow"]]


def _tiny(tmp_path, arch):
    tok = train_tokenizer(["say sun moon star sky sea rain wind snow"], "char", 512)
    mc = ModelConfig(arch=arch, n_layer=1, n_embd=32, n_head=2, max_positions=64)
    model = build_model(mc, tok, 0)
    path = tmp_path / arch
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path), model, tok


@pytest.mark.parametrize("arch", ["gpt2", "llama"])  # Conv1D (transposed) and Linear layers
def test_merged_export_matches_the_adapted_model(tmp_path, arch):
    _, model, tok = _tiny(tmp_path, arch)
    adapted = add_adapters(model, LoraConfig(rank=4, alpha=8))
    with torch.no_grad():  # B starts at zero (a no-op adapter): give it weights to merge
        for name, p in adapted.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    engine = Engine(adapted, TrainConfig(deepspeed=False, lora=LoraConfig()), 10, 1)
    engine.export(str(tmp_path / "out"), 0, tok)
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert not any("lora" in k for k in exported.state_dict())
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        want = adapted.eval()(input_ids=ids).logits
        base = adapted.get_base_model()
        with adapted.disable_adapter():
            without = base(input_ids=ids).logits
        got = exported.eval()(input_ids=ids).logits
    assert (want - without).abs().max() > 1e-3  # the adapters change the outputs ...
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)  # ... and the merge keeps it


def test_in_process_loop_trains_only_adapters(tmp_path):
    path, model, _ = _tiny(tmp_path, "llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = pa.table({"id": [str(i) for i in range(len(ROWS))], "messages": ROWS})
    tc = TrainConfig(deepspeed=False, num_workers=1, micro_batch_size=4, epochs=3, lr=1e-2,
                     warmup_steps=0, lora=LoraConfig(rank=2, target_modules=["q_proj",
                                                                             "v_proj"]))
    engine, tok, state = sft(LoopSpec(path, tc, 0, len(ROWS)), InProcessContext(table))
    assert state["steps"] == 6
    trainable = {n for n, p in engine._module().named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and not any("k_proj" in n for n in trainable)
    engine.export(str(tmp_path / "out"), 0, tok)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)


def test_unknown_target_module_names_the_field(tmp_path):
    _, model, _ = _tiny(tmp_path, "llama")
    with pytest.raises(ValueError, match="lora.target_modules"):
        add_adapters(model, LoraConfig(target_modules=["no_such_proj"]))


def test_driver_check_names_the_section_before_any_trial(tmp_path):
    """The probe and train stages check on the meta device (no weights read) before Tune
    or Ray Train start; the message names the section the bad setting came from."""
    path, _, _ = _tiny(tmp_path, "llama")
    check_adapters(path, LoraConfig(target_modules=["q_proj"]), "probes.lora")
    check_adapters(path, None, "probes.lora")
    with pytest.raises(ValueError, match=r"^probes\.lora\.target_modules \['no_such_proj'\]"):
        check_adapters(path, LoraConfig(target_modules=["no_such_proj"]), "probes.lora")

"""The plain torch engine (trials): batches go to the model's device, and bf16 precision
runs the forward pass in bf16 over fp32 weights."""

import pytest
import torch

from instructmix.config import ModelConfig, TrainConfig
from instructmix.training.collate import collate
from instructmix.training.engine import Engine
from instructmix.training.model_factory import build_model, train_tokenizer

ROWS = [[{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}]
        for w in ["sun", "moon", "star", "sky"]]


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32),
                                              ("bf16", torch.bfloat16)])
def test_plain_engine_computes_in_the_configured_precision(precision, dtype):
    tok = train_tokenizer(["say sun moon star sky"], "char", 512)
    model = build_model(ModelConfig(arch="llama", n_layer=1, n_embd=32, n_head=2,
                                    max_positions=64), tok, 0)
    seen = []
    model.lm_head.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    engine = Engine(model, TrainConfig(deepspeed=False, precision=precision, lr=1e-2), 10, 1)
    assert engine.device == torch.device("cpu")
    before = model.lm_head.weight.detach().clone()
    loss = engine.step(collate(tok, ROWS, 32))
    assert seen == [dtype] and loss == loss  # a number, not NaN
    assert model.lm_head.weight.dtype == torch.float32  # the weights stay fp32
    assert not torch.equal(before, model.lm_head.weight.detach())  # and were updated

"""The `choice` scorer: multiple choice by the log-likelihood of each option.

Each option is encoded as the assistant's response to the row's prompt exactly as training
encodes a row (`training.collate.encode`: chat template up to the generation prompt, then the
option's tokens and eos). Its score is the SUM of the log-probabilities of those response
tokens, eos included, i.e. log P(response == option): the option the model would most likely
answer, whole and then stop. No length normalisation. The prediction is the option of
highest score (the first on a tie); the row is right iff that is the gold option.
"""

from __future__ import annotations

import torch

from instructmix.training.collate import IGNORE, collate


@torch.inference_mode()
def response_logprobs(model, tok, messages: list[list[dict]], max_len: int) -> list[float]:
    """Sum of the log-probabilities of each row's response tokens (and eos)."""
    batch = {k: v.to(model.device) for k, v in collate(tok, messages, max_len).items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = torch.log_softmax(logits.float()[:, :-1], dim=-1)
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(1).tolist()


def option_scores(model, tok, prompts: list[list[dict]], options: list[list[str]],
                  max_len: int, batch_size: int) -> list[list[float]]:
    """Per row, the score of each of its options (`prompts`: the turns before the answer)."""
    flat = [[*p, {"role": "assistant", "content": o}]
            for p, opts in zip(prompts, options, strict=True) for o in opts]
    scores: list[float] = []
    for start in range(0, len(flat), batch_size):
        scores += response_logprobs(model, tok, flat[start: start + batch_size], max_len)
    out, at = [], 0
    for opts in options:
        out.append(scores[at: at + len(opts)])
        at += len(opts)
    return out


def best_option(scores: list[float]) -> int:
    return max(range(len(scores)), key=lambda k: (scores[k], -k))

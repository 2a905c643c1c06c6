"""How a student is asked: the task prefixes it is trained with, and greedy generation.

Training, held-out evaluation and core.student.predict all go through these, so a saved
student is asked exactly as it was trained.
"""

from __future__ import annotations

LABEL_PREFIX = "[label] "
RATIONALE_PREFIX = "[rationale] "


def generate(model, tokenizer, texts: list[str], max_new_tokens: int, max_input_len: int,
             batch_size: int = 32) -> list[str]:
    """Greedy decoding of `texts`, in batches of similar length (less padding), answers in the
    order of `texts`. Run outside any bf16 autocast: greedy decoding on bf16 logits flips
    near-ties and cost the demo student half its accuracy."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    device = next(model.parameters()).device
    # no_grad, not inference_mode: during training, a tensor a model caches here must stay usable by autograd
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_input_len).to(device)
            generated = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
            for i, text in zip(idx, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                out[i] = text
    return out

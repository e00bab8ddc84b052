"""Training and the pipeline tokenize a text through one function (`univigu.pipelines.prompt_input.tokenize_prompts`),
so that a model trains on the tokens the pipeline later gives it; and the module that holds it ships with exported
pipelines (issue #12)."""

import os

import torch
from diffusers.utils.dynamic_modules_utils import get_relative_import_files

import univigu.pipelines.pipeline_univigu as pipeline_module
from univigu.pipelines import prompt_input
from univigu.pipelines.prompt_input import tokenize_prompts
from univigu.toyworld.components import build_tokenizer
from univigu.training.encoding import encoding_pipeline, tokenize, tokenize_text_stream


TEXTS = ["a red circle moving left", "  a  blue &amp; square\n staying still  ", ""]


def test_training_tokenizes_as_the_pipeline():
    tokenizer = build_tokenizer()
    pipe = encoding_pipeline(tokenizer=tokenizer)
    tokens = tokenize_prompts(pipe.tokenizer, TEXTS, 12)  # what the pipeline tokenizes with
    enc = tokenize(tokenizer, TEXTS, 12)
    assert torch.equal(enc.input_ids, tokens.input_ids) and torch.equal(enc.attention_mask, tokens.attention_mask)
    # the prompt's text stream in t2v and the text stream training builds are the same tokens
    stream_ids, stream_mask = pipe.prompt_text_stream(TEXTS, max_sequence_length=12, device=torch.device("cpu"))
    train_ids, _, train_real = tokenize_text_stream(tokenizer, TEXTS, 12)
    length = stream_ids.shape[1]
    assert torch.equal(train_ids[:, :length], stream_ids) and torch.equal(train_real[:, :length], stream_mask)


def test_prompt_input_ships_with_the_pipeline():
    siblings = {os.path.basename(f) for f in get_relative_import_files(pipeline_module.__file__)}
    assert "prompt_input.py" in siblings
    # the pipeline encodes and tokenizes its prompts with the functions of prompt_input
    assert pipeline_module.t5_prompt_embeds is prompt_input.t5_prompt_embeds
    assert pipeline_module.prompt_tokens is prompt_input.prompt_tokens

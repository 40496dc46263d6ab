"""paddleformers integration: a Llama routed through our "flashmask" attention
trains exactly as with the equivalent dense [B, 1, S, S] mask on packed data."""
import ast
import importlib
import importlib.util
import os

import numpy as np
import paddle
import pytest

pytest.importorskip("paddleformers")

from paddleformers.nn.attention.interface import ALL_ATTENTION_FUNCTIONS, AttentionInterface
from paddleformers.transformers import LlamaConfig, LlamaForCausalLM

from paddle_flashmask.integrations import paddleformers as pf_flashmask
from paddle_flashmask.masks import MaskSpec, causal_document_mask, share_question_mask

VOCAB, SEQLEN = 97, 64
LOSS_RTOL, GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-4, 1e-6


def tiny_llama(seed=0):
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=SEQLEN)
    pf_flashmask.disable_gpu_only_fusions(config)
    paddle.seed(seed)
    return LlamaForCausalLM(config)


def packed_batch(segment_lens, spec, seed=0):
    """Random tokens; positions restart at every segment start; labels are the
    next token inside a segment and -100 at segment ends and on padding."""
    rng = np.random.default_rng(seed)
    batch = len(segment_lens)
    ids = rng.integers(0, VOCAB, size=(batch, SEQLEN))
    positions = np.zeros((batch, SEQLEN), np.int64)
    labels = np.full((batch, SEQLEN), -100, np.int64)
    for b, lens in enumerate(segment_lens):
        start = 0
        for n in lens:
            positions[b, start:start + n] = np.arange(n)
            labels[b, start:start + n - 1] = ids[b, start + 1:start + n]
            start += n
    return ids, positions, labels, spec


def loss_and_grads(model, batch, flash_mask):
    ids, positions, labels, spec = batch
    pf_flashmask.use_flash_mask(model, flash_mask)
    mask = {k: paddle.to_tensor(v) for k, v in pf_flashmask.attention_inputs(spec, flash_mask).items()}
    model.clear_gradients()
    loss = model(input_ids=paddle.to_tensor(ids), position_ids=paddle.to_tensor(positions),
                 labels=paddle.to_tensor(labels), **mask)[0]
    loss.backward()
    grads = {p.name: p.grad.numpy().copy() for p in model.parameters() if p.grad is not None}
    return float(loss), grads


def assert_same_training_signal(model, batch):
    flash_loss, flash_grads = loss_and_grads(model, batch, flash_mask=True)
    dense_loss, dense_grads = loss_and_grads(model, batch, flash_mask=False)
    assert np.isfinite(flash_loss)
    assert abs(flash_loss - dense_loss) <= LOSS_RTOL * abs(dense_loss), (flash_loss, dense_loss)
    assert flash_grads.keys() == dense_grads.keys() and len(flash_grads) > 0
    for name, grad in flash_grads.items():
        np.testing.assert_allclose(grad, dense_grads[name], rtol=GRAD_RTOL, atol=GRAD_ATOL,
                                   err_msg=name)


@pytest.fixture(autouse=True)
def restore_registry():
    yield
    pf_flashmask.disable()


def test_enable_registers_and_disable_restores():
    pf_flashmask.disable()  # start from paddleformers' own registry, whatever ran before
    builtin = AttentionInterface._global_mapping["flashmask"]
    assert builtin is not pf_flashmask.flashmask_attention_forward
    pf_flashmask.enable()
    pf_flashmask.enable()  # idempotent: disable() must still find the built-in
    assert ALL_ATTENTION_FUNCTIONS["flashmask"] is pf_flashmask.flashmask_attention_forward
    assert pf_flashmask.is_enabled()
    pf_flashmask.disable()
    assert AttentionInterface._global_mapping["flashmask"] is builtin


def test_causal_document_packing_matches_dense_mask(monkeypatch):
    calls = []
    real_op = pf_flashmask.flashmask_attention
    monkeypatch.setattr(pf_flashmask, "flashmask_attention",
                        lambda *a, **k: calls.append(k["causal"]) or real_op(*a, **k))
    doc_lens = [[20, 9, 30], [64], [5, 17, 11, 3]]  # rows 0 and 2 end in padding
    batch = packed_batch(doc_lens, causal_document_mask(doc_lens, SEQLEN))
    assert_same_training_signal(tiny_llama(), batch)
    assert calls == [True, True]  # our op ran in both layers, in the flash_mask run only


def test_share_question_packing_matches_dense_mask():
    groups = [[(10, [6, 9]), (7, [4, 4, 5])], [(12, [20, 15])]]
    row_segments = [sum(([q, *answers] for q, answers in row), []) for row in groups]
    batch = packed_batch(row_segments, share_question_mask(groups, SEQLEN))
    assert_same_training_signal(tiny_llama(seed=1), batch)


def _paddleformers_function(relpath, name):
    """One function of a paddleformers module. Imported normally when possible;
    else compiled alone from its source, because paddleformers.datasets imports
    pyarrow, which can fail to load beside the installed NumPy."""
    module = "paddleformers." + relpath[:-3].replace("/", ".")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        path = os.path.join(os.path.dirname(importlib.util.find_spec("paddleformers").origin), relpath)
        with open(path) as f:
            tree = ast.parse(f.read())
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
        scope = {"np": np, "List": list}
        exec(compile(ast.Module([node], type_ignores=[]), path, "exec"), scope)
        return scope[name]


def test_paddleformers_collator_indices_match_dense_mask():
    """The indices paddleformers' SFT collator pads (padding columns masked for every
    row, so padding rows see no key) run through our op, and through dense_collator."""
    gen_indices = _paddleformers_function("datasets/collate.py", "gen_attn_mask_startend_row_indices")
    doc_lens = [[20, 9, 30], [12, 40]]
    rows = [gen_indices([[0] * n for n in lens], SEQLEN, False) for lens in doc_lens]
    indices = np.concatenate(rows)  # [B, 1, S, 1] int32, as collate_fn emits it
    assert indices.shape == (2, 1, SEQLEN, 1) and indices.dtype == np.int32
    batch = packed_batch(doc_lens, MaskSpec(indices, True))
    assert_same_training_signal(tiny_llama(seed=2), batch)

    dense = pf_flashmask.dense_collator(lambda: {pf_flashmask.INDICES_KEY: indices})()
    assert set(dense) == {"attention_mask"} and dense["attention_mask"].shape == (2, 1, SEQLEN, SEQLEN)


def test_unmasked_batch_runs_plain_causal_attention():
    """No indices and no mask: the model's default causal attention, as with sdpa."""
    model = tiny_llama(seed=3)
    ids = paddle.to_tensor(np.random.default_rng(3).integers(0, VOCAB, size=(2, SEQLEN)))
    pf_flashmask.use_flash_mask(model, True)
    flash = model(input_ids=ids)[0].numpy()
    pf_flashmask.use_flash_mask(model, False)
    dense = model(input_ids=ids)[0].numpy()
    np.testing.assert_allclose(flash, dense, rtol=1e-4, atol=1e-5)


def test_sink_runs_as_learnable_sink_like_paddleformers_eager():
    """GPT-OSS passes sink= per head: our registered function serves it (it raised
    NotImplementedError before) and matches paddleformers' eager sink path."""
    import types

    from paddleformers.nn.attention.eager_attention import eager_attention_forward

    from reference import dense_allowed

    b, s, h, hk, d = 2, 40, 4, 2, 16
    paddle.seed(3)
    q, k, v = (paddle.randn([b, n, s, d]) for n in (h, hk, hk))  # paddleformers' [B, H, S, D]
    sink = paddle.to_tensor(np.linspace(-0.5, 1.5, h).astype("float32"))
    for t in (q, k, v, sink):
        t.stop_gradient = False
    spec = causal_document_mask([[15, 25], [40]], s)
    idx = paddle.to_tensor(spec.startend_row_indices)
    module = types.SimpleNamespace(num_key_value_groups=h // hk, training=False, is_causal=True)
    out, _ = pf_flashmask.flashmask_attention_forward(module, q, k, v, attn_mask_startend_row_indices=idx,
                                                      sink=sink, scaling=d ** -0.5)
    allowed = dense_allowed(idx, spec.causal, s, s)
    additive = paddle.where(allowed, paddle.zeros(allowed.shape), paddle.full(allowed.shape, -np.inf))
    ref, _ = eager_attention_forward(module, q, k, v, attention_mask=additive, sink=sink, scaling=d ** -0.5)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    dout = paddle.randn(out.shape)
    for g, rg in zip(paddle.grad([out], [q, k, v, sink], [dout]), paddle.grad([ref], [q, k, v, sink], [dout])):
        np.testing.assert_allclose(g.numpy(), rg.numpy(), rtol=1e-4, atol=1e-4)

"""PaddleNLP 2.8 integration: its patched Llama trains identically on FlashMask
indices and on the equivalent dense [B, 1, S, S] mask.

PaddleNLP 2.8 is not a dependency (it needs older aistudio-sdk / datasets /
pyarrow pins beside Paddle 3.x, see docs/paddleformers.md): this module runs
where it is installed and is skipped elsewhere."""
import inspect
import warnings

import numpy as np
import paddle
import pytest

pytest.importorskip("paddlenlp.transformers.llama.modeling")

from paddlenlp.transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

from paddle_flashmask.integrations import paddlenlp as pnlp_flashmask
from paddle_flashmask.masks import causal_document_mask, share_question_mask

VOCAB, SEQLEN = 97, 64


def tiny_llama(seed=0):
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=SEQLEN, use_flash_attention=True)
    paddle.seed(seed)
    return LlamaForCausalLM(config)


def run(model, ids, positions, labels, mask):
    model.clear_gradients()
    loss = model(input_ids=paddle.to_tensor(ids), position_ids=paddle.to_tensor(positions),
                 labels=paddle.to_tensor(labels), **mask)[0]
    loss.backward()
    return float(loss), {p.name: p.grad.numpy().copy() for p in model.parameters()
                         if p.grad is not None}


def test_patch_advertises_the_indices_argument():
    """PaddleNLP inspects patched forwards (and would strip return_dict & co. from
    one whose signature lacks them); its Trainer keeps only columns forward names."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pnlp_flashmask.patch_llama()
    assert not [w for w in caught if "is patched" in str(w.message)]
    for cls in (LlamaModel, LlamaForCausalLM):
        params = inspect.signature(cls.forward).parameters
        assert pnlp_flashmask.INDICES_KEY in params and "return_dict" in params


@pytest.mark.parametrize("kind", ["causal_document", "share_question"])
def test_patched_llama_matches_dense_mask(kind, monkeypatch):
    pnlp_flashmask.patch_llama()
    calls = []
    real_op = pnlp_flashmask.flashmask_attention
    monkeypatch.setattr(pnlp_flashmask, "flashmask_attention",
                        lambda *a, **k: calls.append(1) or real_op(*a, **k))
    if kind == "causal_document":
        segments = [[20, 9, 30], [64]]
        spec = causal_document_mask(segments, SEQLEN)
    else:
        groups = [[(10, [6, 9]), (7, [4, 4, 5])], [(12, [20, 15])]]
        segments = [sum(([q, *a] for q, a in row), []) for row in groups]
        spec = share_question_mask(groups, SEQLEN)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(2, SEQLEN))
    positions = np.zeros_like(ids)
    labels = np.full_like(ids, -100)
    for b, lens in enumerate(segments):
        start = 0
        for n in lens:
            positions[b, start:start + n] = np.arange(n)
            labels[b, start:start + n - 1] = ids[b, start + 1:start + n]
            start += n
    model = tiny_llama()
    flash = run(model, ids, positions, labels,
                {"attn_mask_startend_row_indices": paddle.to_tensor(spec.startend_row_indices)})
    assert len(calls) == 2  # both layers ran our op
    dense = run(model, ids, positions, labels, {"attention_mask": paddle.to_tensor(spec.to_dense())})
    assert len(calls) == 2  # the dense mask took PaddleNLP's own path
    assert abs(flash[0] - dense[0]) <= 1e-5 * abs(dense[0])
    for name, grad in flash[1].items():
        np.testing.assert_allclose(grad, dense[1][name], rtol=1e-4, atol=1e-6, err_msg=name)

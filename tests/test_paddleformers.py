"""paddleformers integration: every model family of its attention registry that
builds here trains through our "flashmask" exactly as through paddleformers'
`eager` attention, on packed SFT and DPO batches from paddleformers' own
collators; calls our kernel cannot serve go to paddleformers' implementations."""
import ast
import importlib.util
import os
from types import SimpleNamespace

import numpy as np
import paddle
import pytest

pytest.importorskip("paddleformers")

import paddleformers.transformers as pft
from paddleformers.datasets.collate import collate_fn, dpo_collate_fn
from paddleformers.datasets.DPODataset import Sequence as DPOSequence
from paddleformers.datasets.SFTDataset import Sequence as SFTSequence
from paddleformers.nn.attention.eager_attention import eager_attention_forward
from paddleformers.nn.attention.interface import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from paddle_flashmask.integrations import paddleformers as pf_flashmask

VOCAB, SEQLEN = 97, 64
LOSS_RTOL, GRAD_TOL = 1e-6, 1e-5

TINY = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=SEQLEN)
WINDOWED = dict(sliding_window=8, layer_types=["sliding_attention", "full_attention"])
FAMILIES = {  # name: (config class, model class, what the tiny config adds)
    "llama": (pft.LlamaConfig, pft.LlamaForCausalLM, {}),
    "ernie4_5": (pft.Ernie4_5Config, pft.Ernie4_5ForCausalLM, {}),
    # Its MoE gate (expand_modality_expert_id) has no CPU kernel: the MoE layers start
    # after the last layer, so the tiny model is ERNIE 4.5 MoE's attention and dense MLP.
    "ernie4_5_moe": (pft.Ernie4_5_MoeConfig, pft.Ernie4_5_MoeForCausalLM,
                     dict(moe_num_experts=4, moe_k=2, moe_layer_start_index=2,
                          num_nextn_predict_layers=0)),
    # query_pre_attn_scalar != head_dim: the model's `scaling` is not the default one.
    "gemma3_text": (pft.Gemma3TextConfig, pft.Gemma3ForCausalLM,
                    dict(WINDOWED, query_pre_attn_scalar=24)),
    "phi3": (pft.Phi3Config, pft.Phi3ForCausalLM, dict(sliding_window=8)),
    # Learnable sinks in every layer: our kernel's learnable_sink on the CPU.
    "gpt_oss": (pft.GptOssConfig, pft.GptOssForCausalLM,
                dict(WINDOWED, num_local_experts=4, num_experts_per_tok=2)),
}
TRAINING_ARGS = SimpleNamespace(context_parallel_size=1, tensor_model_parallel_size=1,
                                sequence_parallel=False, fp8=False, num_nextn_predict_layers=0)
MODEL_ARGS = SimpleNamespace(use_attn_mask_startend_row_indices=True, use_global_causal_attn=False)
TOKENIZER = SimpleNamespace(pad_token_id=0)


@pytest.fixture(autouse=True)
def restore_registry():
    yield
    pf_flashmask.disable()


def tiny_model(family, seed=0):
    config_cls, model_cls, extra = FAMILIES[family]
    config = config_cls(**TINY, **extra)
    pf_flashmask.use_flash_mask(config, True)
    paddle.seed(seed)
    return model_cls(config)


def sft_batch(seed=0):
    """paddleformers' collate_fn on packed SFT sequences: rows of several
    documents, positions restarting per document, the first row tail-padded."""
    rng = np.random.default_rng(seed)

    def document(n):
        ids = rng.integers(1, VOCAB, n).tolist()
        labels = [-100] * (n // 3) + ids[n // 3 + 1:] + [-100]  # loss on the "response"
        return SFTSequence(token_ids=ids, position_ids=list(range(n)), labels=labels,
                           num_examples=1)

    rows = [[document(n) for n in (20, 9, 30)], [document(n) for n in (40, 24)]]
    return collate_fn(rows, TOKENIZER, TRAINING_ARGS, MODEL_ARGS, SEQLEN, padding_free=False)


def dpo_sequence(rng, prompt_len, chosen_len, rejected_len):
    """One preference example laid out as paddleformers' DPODataset lays it out:
    [prompt, chosen[:-1], prompt[-1], rejected[:-1]], its indices hiding the
    chosen answer from the rejected one."""
    prompt, chosen, rejected = (rng.integers(1, VOCAB, n).tolist()
                                for n in (prompt_len, chosen_len, rejected_len))
    cur_len = prompt_len + chosen_len + rejected_len - 1
    return DPOSequence(
        token_ids=prompt + chosen[:-1] + [prompt[-1]] + rejected[:-1],
        position_ids=(list(range(prompt_len + chosen_len - 1)) + [prompt_len - 1]
                      + list(range(prompt_len, prompt_len + rejected_len - 1))),
        attention_mask=None,
        attn_mask_startend_row_indices=([cur_len] * prompt_len
                                        + [prompt_len + chosen_len - 1] * (chosen_len - 1)
                                        + [cur_len] * rejected_len),
        response_labels=[-100] * (prompt_len - 1) + chosen + rejected,
        response_index=[0, chosen_len, chosen_len + rejected_len],
        score_delta=0.0, has_mm=[False])


def dpo_batch(seed=0):
    """paddleformers' dpo_collate_fn on packed preference examples."""
    rng = np.random.default_rng(seed)
    rows = [[dpo_sequence(rng, 10, 7, 9), dpo_sequence(rng, 8, 12, 6)],
            [dpo_sequence(rng, 14, 20, 16)]]
    batch = dpo_collate_fn(rows, TOKENIZER, TRAINING_ARGS, SEQLEN)
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
            "labels": batch["response_labels"],  # next-token labels of both answers
            pf_flashmask.INDICES_KEY: batch[pf_flashmask.INDICES_KEY]}


BATCHES = {"sft": sft_batch, "dpo": dpo_batch}


def loss_and_grads(model, batch, flash_mask):
    pf_flashmask.use_flash_mask(model, flash_mask)
    model.clear_gradients()
    inputs = {k: paddle.to_tensor(batch[k]) for k in
              ("input_ids", "position_ids", "labels", pf_flashmask.INDICES_KEY)}
    out = model(**inputs)
    loss = out[0] if isinstance(out, (tuple, list)) else out.loss
    loss.backward()
    grads = {p.name: p.grad.numpy().copy() for p in model.parameters() if p.grad is not None}
    return float(loss), grads


def count_kernel_calls(monkeypatch):
    calls = []
    real_op = pf_flashmask.flashmask_attention
    monkeypatch.setattr(pf_flashmask, "flashmask_attention",
                        lambda *a, **k: calls.append(k["softmax_scale"]) or real_op(*a, **k))
    return calls


@pytest.mark.parametrize("kind", sorted(BATCHES))
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_matches_eager(family, kind, monkeypatch):
    model = tiny_model(family)
    batch = BATCHES[kind]()
    calls = count_kernel_calls(monkeypatch)
    flash_loss, flash_grads = loss_and_grads(model, batch, flash_mask=True)
    kernel_calls = len(calls)
    eager_loss, eager_grads = loss_and_grads(model, batch, flash_mask=False)
    assert len(calls) == kernel_calls  # the dense baseline never runs our op
    # every layer runs our kernel (gpt_oss's sinks too: our learnable_sink on the CPU)
    assert kernel_calls == TINY["num_hidden_layers"]
    assert np.isfinite(flash_loss)
    assert abs(flash_loss - eager_loss) <= LOSS_RTOL * abs(eager_loss), (flash_loss, eager_loss)
    assert flash_grads.keys() == eager_grads.keys() and len(flash_grads) > 0
    for name, grad in flash_grads.items():
        np.testing.assert_allclose(grad, eager_grads[name], rtol=GRAD_TOL, atol=GRAD_TOL,
                                   err_msg=name)


def test_gemma3_scaling_and_window_reach_the_kernel(monkeypatch):
    """Gemma 3's scale is query_pre_attn_scalar**-0.5 (not head_dim**-0.5), and its
    sliding layer gets the window-limited indices in both modes."""
    calls = count_kernel_calls(monkeypatch)
    loss_and_grads(tiny_model("gemma3_text"), sft_batch(), flash_mask=True)
    assert calls == [pytest.approx(24 ** -0.5)] * 2
    seen = []
    monkeypatch.setitem(AttentionInterface._global_mapping, "eager",
                        lambda *a, **k: seen.append(k[pf_flashmask.INDICES_KEY]) or
                        eager_attention_forward(*a, **k))
    loss_and_grads(tiny_model("gemma3_text"), sft_batch(), flash_mask=False)
    sliding, full = (s.numpy()[1, 0, :, 0] for s in seen)  # row 1: documents of 40 and 24
    assert full[0] == 40 and sliding[0] == 8  # key 0 is hidden from rows >= 8 in the window


def deepseek_v3_attention():
    """DeepSeek-V3's scaled_dot_product_attention, compiled from the installed
    source under its module name (the module itself needs paddlefleet_ops)."""
    module = "paddleformers.transformers.deepseek_v3.modeling"
    path = os.path.join(os.path.dirname(importlib.util.find_spec("paddleformers").origin),
                        "transformers", "deepseek_v3", "modeling.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    node = next(n for n in tree.body
                if isinstance(n, ast.FunctionDef) and n.name == "scaled_dot_product_attention")
    scope = {"__name__": module, "paddle": paddle, "nn": paddle.nn,
             "ALL_ATTENTION_FUNCTIONS": ALL_ATTENTION_FUNCTIONS}
    exec(compile(ast.Module([node], type_ignores=[]), path, "exec"), scope)
    return scope["scaled_dot_product_attention"]


@pytest.mark.parametrize("kind", sorted(BATCHES))
def test_deepseek_v3_attention_matches_eager(kind):
    """DeepSeek-V3 pre-scales q by softmax_scale * sqrt(d) and also passes scaling=
    under "flashmask" (the built-in ignores scaling); its result must equal eager's."""
    attention = deepseek_v3_attention()
    pf_flashmask.enable()
    config = pft.DeepseekV3Config(hidden_size=64, num_attention_heads=4)
    batch = BATCHES[kind]()
    indices = paddle.to_tensor(batch[pf_flashmask.INDICES_KEY])
    rng = np.random.default_rng(0)
    b, h, dq, dv = indices.shape[0], 4, 24, 16  # q/k head dim 24 (nope + rope), v 16
    arrays = [rng.standard_normal(s).astype("float32")
              for s in ([b, h, SEQLEN, dq], [b, h, SEQLEN, dq], [b, h, SEQLEN, dv])]
    # Padding rows see no key: eager averages every value there, our op returns 0.
    # No loss reads them (labels -100), so they get no weight and are not compared.
    real = batch["input_ids"] != 0
    weight = rng.standard_normal([b, SEQLEN, h * dv]).astype("float32") * real[..., None]
    results = {}
    for implementation in ("flashmask", "eager"):
        config._attn_implementation = implementation
        q, k, v = (paddle.to_tensor(a, stop_gradient=False) for a in arrays)
        out = attention(q, config, k, v, None, False, attn_mask_startend_row_indices=indices,
                        softmax_scale=1.3 * dq ** -0.5, training=True)
        (out * paddle.to_tensor(weight)).sum().backward()
        results[implementation] = [out.numpy()[real]] + [t.grad.numpy() for t in (q, k, v)]
    for name, ours, eager in zip(("out", "dq", "dk", "dv"), *results.values()):
        np.testing.assert_allclose(ours, eager, rtol=GRAD_TOL, atol=GRAD_TOL, err_msg=name)


def attention_call(seed=0, heads=4, kv_heads=2, head_dim=16):
    """A module and [B, H, S, D] q/k/v as a paddleformers attention layer passes them."""
    rng = np.random.default_rng(seed)
    module = paddle.nn.Layer()
    module.num_key_value_groups = heads // kv_heads
    q = paddle.to_tensor(rng.standard_normal([2, heads, SEQLEN, head_dim]).astype("float32"))
    k, v = (paddle.to_tensor(rng.standard_normal([2, kv_heads, SEQLEN, head_dim]).astype("float32"))
            for _ in range(2))
    return module, q, k, v


def test_sink_call_runs_our_kernel_like_eager(monkeypatch):
    """A sink call (GPT-OSS) runs our kernel's learnable_sink on the CPU, with the
    indices and scaling it came with, and equals paddleformers' eager."""
    calls = count_kernel_calls(monkeypatch)
    module, q, k, v = attention_call()
    sink = paddle.to_tensor(np.linspace(-1, 1, 4).astype("float32"))
    indices = paddle.to_tensor(sft_batch()[pf_flashmask.INDICES_KEY])
    kwargs = dict(attn_mask_startend_row_indices=indices, sink=sink, scaling=0.3)
    ours = pf_flashmask.flashmask_attention_forward(module, q, k, v, **kwargs)[0]
    eager = eager_attention_forward(module, q, k, v, **kwargs)[0]
    assert calls == [0.3]
    np.testing.assert_allclose(ours.numpy(), eager.numpy(), rtol=1e-5, atol=1e-6)


def test_dense_mask_only_call_goes_to_eager(monkeypatch):
    """A dense additive mask without indices need not be column-wise: eager serves it."""
    calls = count_kernel_calls(monkeypatch)
    module, q, k, v = attention_call()
    mask = np.where(np.random.default_rng(1).random([2, 1, SEQLEN, SEQLEN]) < 0.5, 0.0, -1e6)
    mask = paddle.to_tensor(mask.astype("float32"))
    ours = pf_flashmask.flashmask_attention_forward(module, q, k, v, attention_mask=mask,
                                                    scaling=0.2)[0]
    eager = eager_attention_forward(module, q, k, v, attention_mask=mask, scaling=0.2)[0]
    assert not calls
    np.testing.assert_array_equal(ours.numpy(), eager.numpy())


def test_enable_registers_and_disable_restores():
    pf_flashmask.disable()  # start from paddleformers' own registry, whatever ran before
    builtin = AttentionInterface._global_mapping["flashmask"]
    assert builtin is not pf_flashmask.flashmask_attention_forward
    pf_flashmask.enable()
    pf_flashmask.enable()  # idempotent: disable() must still find the built-in
    assert ALL_ATTENTION_FUNCTIONS["flashmask"] is pf_flashmask.flashmask_attention_forward
    assert pf_flashmask.is_enabled()
    assert ALL_ATTENTION_FUNCTIONS["eager"] is eager_attention_forward  # other keys untouched
    pf_flashmask.disable()
    assert AttentionInterface._global_mapping["flashmask"] is builtin


def test_unmasked_batch_runs_plain_causal_attention():
    """No indices and no mask: causal attention, as the eager model's own causal mask."""
    model = tiny_model("llama", seed=3)
    ids = paddle.to_tensor(np.random.default_rng(3).integers(0, VOCAB, size=(2, SEQLEN)))
    pf_flashmask.use_flash_mask(model, True)
    flash = model(input_ids=ids)[0].numpy()
    pf_flashmask.use_flash_mask(model, False)
    eager = model(input_ids=ids)[0].numpy()
    np.testing.assert_allclose(flash, eager, rtol=1e-5, atol=1e-5)


def test_attention_inputs_are_the_indices_of_a_mask_spec():
    from paddle_flashmask.masks import causal_document_mask

    inputs = pf_flashmask.attention_inputs(causal_document_mask([[3, 5]], 8))
    assert inputs[pf_flashmask.INDICES_KEY].dtype == np.int32
    np.testing.assert_array_equal(inputs[pf_flashmask.INDICES_KEY].ravel(), [3] * 3 + [8] * 5)
    with pytest.raises(TypeError, match="spec"):
        pf_flashmask.attention_inputs(np.zeros([1, 1, 8, 1]))


def test_use_flash_mask_rejects_a_non_bool():
    with pytest.raises(TypeError, match="flash_mask"):
        pf_flashmask.use_flash_mask(tiny_model("llama"), "no")


def test_sink_runs_as_learnable_sink_like_paddleformers_eager():
    """GPT-OSS passes sink= per head: our registered function serves it (it raised
    NotImplementedError before) and matches paddleformers' eager sink path."""
    import types

    from paddleformers.nn.attention.eager_attention import eager_attention_forward

    from reference import dense_allowed

    from paddle_flashmask.masks import causal_document_mask

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

"""Paddle's own documentation of `paddle.nn.functional.flashmask_attention` (the
installed wheel's docstring), run against ours with only the function swapped: its
runnable example and each named mask example (code + the dense 0/1 matrix drawn
above it) must match; and our signature is Paddle's, plus V4's learnable_sink. The
block_mask example of FlashMask's own documentation runs too (Paddle 3.3.1's docstring has none)."""
import inspect
import re

import numpy as np
import paddle
import pytest

import paddle_flashmask as pfm
from attention_cases import rel_err
from reference import dense_allowed, dense_attention

DOC = inspect.getdoc(paddle.nn.functional.flashmask_attention)


def code_of(block):
    """The `>>>` / `...` lines of a docstring block as Python source."""
    lines = [m.group(1) for m in re.finditer(r"^\s*(?:>>>|\.\.\.) ?(.*)$", block, re.M)]
    return "\n".join(lines)


def mask_sections():
    """(title, causal, dense 0/1 matrix, code) of every 'For `X Mask`' example."""
    found = []
    for part in DOC.split("For `")[1:]:
        title = part.split("`")[0]
        causal = "causal=True" in part.splitlines()[0]
        rows = re.findall(r"\[((?:[01], )*[01])\]", part.split(">>>")[0])
        if not rows:  # the global sliding window section has its matrix after a SKIP line
            rows = re.findall(r"\[((?:[01], )*[01])\]", part)
        matrix = np.array([[int(x) for x in r.split(", ")] for r in rows], dtype=bool)
        found.append((title, causal, matrix, code_of(part)))
    return found


SECTIONS = mask_sections()


def test_docstring_has_the_examples_we_run():
    titles = [s[0] for s in SECTIONS]
    assert len(SECTIONS) >= 10 and "Causal Mask" in titles and "Document Mask" in titles
    assert all(s[2].shape == (10, 10) for s in SECTIONS), [(s[0], s[2].shape) for s in SECTIONS]


@pytest.mark.parametrize("title,causal,matrix,code", SECTIONS, ids=[s[0] for s in SECTIONS])
def test_mask_examples_match_their_drawn_matrix(title, causal, matrix, code, capsys):
    scope = {}
    exec(compile(code, f"<paddle doc: {title}>", "exec"), scope)  # builds startend_row_indices
    startend = scope["startend_row_indices"]
    paddle.seed(0)
    q, k, v = (paddle.randn([1, 10, 2, 32]) for _ in range(3))
    out = pfm.flashmask_attention(q, k, v, startend, causal=causal)
    ref, _ = dense_attention(q, k, v, paddle.to_tensor(matrix[None, None]), compute_dtype="float64")
    assert rel_err(out, ref) <= 1e-5, title


def test_runnable_example_runs_unchanged(monkeypatch, capsys):
    """The docstring's first example calls paddle.nn.functional.flashmask_attention on
    bfloat16 tensors; with that name pointing at ours it runs as written, and its output
    has the printed pattern of zero rows (the values differ: paddle.rand on GPU)."""
    block = DOC.split("Examples:")[1].split("To convert")[0]
    code = code_of(block)
    assert "paddle.nn.functional.flashmask_attention(" in code
    monkeypatch.setattr(paddle.nn.functional, "flashmask_attention", pfm.flashmask_attention)
    scope = {}
    exec(compile(code, "<paddle doc example>", "exec"), scope)
    output = scope["output"]
    printed = block.split("print(output)")[1]
    values = np.array([float(x) for x in re.findall(r"-?\d+\.\d*", printed.split("stop_gradient=True,")[1])])
    expected_zero_rows = (values.reshape(1, 10, 2, 32) == 0).all(-1)
    assert bool(((output.astype("float32") == 0).all(-1).numpy() == expected_zero_rows).all())
    ref, _ = dense_attention(scope["q"], scope["k"], scope["v"], _causal_allowed(scope["startend_row_indices"]),
                             compute_dtype="float64")
    assert rel_err(output, ref) <= 1e-2  # bfloat16 output


def _causal_allowed(startend):
    lts = startend.numpy()[..., 0]  # [1, heads, 10]
    i = np.arange(10)[:, None]
    j = np.arange(10)[None, :]
    allowed = (j <= i) & (i[None, None] < lts[:, :, None, :])
    return paddle.to_tensor(allowed)


def test_signature_is_paddles_plus_learnable_sink():
    """Same parameter names, kinds and defaults as Paddle 3.3.1's (annotations aside),
    with FlashMask V4's learnable_sink after block_mask, where V4 puts it."""
    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    paddles = shape(paddle.nn.functional.flashmask_attention)
    ours = shape(pfm.flashmask_attention)
    assert ours[:-1] == paddles
    assert ours[-1] == ("learnable_sink", inspect.Parameter.KEYWORD_ONLY, None)


def test_flashmask_readme_block_mask_example():
    """The block_mask example of FlashMask's own documentation (PaddlePaddle/flash-attention,
    flashmask README, "Implementation Example"; Paddle 3.3.1's docstring has none): GQA 16 / 4
    heads, d = dv = 128, bfloat16, a causal sliding window built from one LTS column, a random
    0/1 block mask of shape [B, 1, ceil(Sq/128), ceil(Sk/128)], return_softmax_lse=True. Its
    `paddle.set_flags({'FLAGS_flash_attn_version': 3})` picks Paddle's kernel and has no
    counterpart here (a CPU Paddle refuses the flag), so that line is the one left out."""
    paddle.seed(2024)
    batch, seqlen, heads, heads_kv, d = 28, 128, 16, 4, 128
    q = paddle.randn([batch, seqlen, heads, d], dtype=paddle.bfloat16)
    k = paddle.randn([batch, seqlen, heads_kv, d], dtype=paddle.bfloat16)
    v = paddle.randn([batch, seqlen, heads_kv, d], dtype=paddle.bfloat16)
    window = int(1024 * seqlen / 8192)  # the example's default window, scaled from 8K
    startend = paddle.clip(paddle.arange(window, seqlen + window, dtype="int32").reshape((1, 1, seqlen, 1)),
                           max=seqlen).repeat_interleave(batch, 0)
    block_mask = paddle.randint(0, 2, [batch, 1, 1, 1], dtype=paddle.int32)
    assert 0 < int(block_mask.sum()) < batch  # both kinds of batch in the draw
    out, lse = pfm.flashmask_attention(q, k, v, startend_row_indices=startend, causal=True,
                                       return_softmax_lse=True, block_mask=block_mask)
    assert out.shape == [batch, seqlen, heads, d] and out.dtype == paddle.bfloat16
    allowed = dense_allowed(startend, True, seqlen, seqlen, block_mask=block_mask)
    ref, ref_lse = dense_attention(q, k, v, allowed, compute_dtype="float64")
    assert rel_err(out, ref) <= 1e-2  # bfloat16 output
    dropped = block_mask.numpy()[:, 0, 0, 0] == 0
    assert (out.numpy()[dropped] == 0).all()  # a dropped block leaves its rows nothing to see
    kept_lse, kept_ref = lse.numpy()[~dropped], ref_lse.numpy()[~dropped]
    assert np.allclose(kept_lse, kept_ref, atol=1e-2)

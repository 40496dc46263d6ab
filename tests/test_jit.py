"""The op under paddle.jit.to_static (forward and backward) and through
paddle.jit.save / paddle.jit.load."""
import os

import numpy as np
import paddle

import paddle_flashmask as pfm


class PackedAttention(paddle.nn.Layer):
    def __init__(self, hidden=32, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = paddle.nn.Linear(hidden, 3 * hidden)

    def forward(self, x, startend_row_indices):
        b, s, hidden = x.shape
        q, k, v = self.qkv(x).reshape([b, s, 3, self.heads, hidden // self.heads]).unbind(axis=2)
        out = pfm.flashmask_attention(q, k, v, startend_row_indices, causal=True)
        return out.reshape([b, s, hidden])


def doc_mask(batch, s, doc):
    ends = (np.arange(s) // doc + 1) * doc
    return paddle.to_tensor(np.broadcast_to(np.minimum(ends, s).reshape(1, 1, s, 1),
                                            (batch, 1, s, 1)).astype(np.int32))


def test_to_static_matches_dygraph_fwd_and_grads(tmp_path):
    paddle.seed(0)
    layer = PackedAttention()
    x, idx = paddle.randn([2, 40, 32]), doc_mask(2, 40, 13)
    eager = layer(x, idx)
    eager.sum().backward()
    eager_grad = layer.qkv.weight.grad.clone()
    layer.clear_gradients()

    spec = [paddle.static.InputSpec([None, 40, 32], "float32"),
            paddle.static.InputSpec([None, 1, 40, 1], "int32")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    out = static(x, idx)
    out.sum().backward()
    assert float((out - eager).abs().max()) < 1e-6
    assert float((layer.qkv.weight.grad - eager_grad).abs().max()) < 1e-5

    path = os.path.join(str(tmp_path), "packed_attention")
    paddle.jit.save(static, path)
    loaded = paddle.jit.load(path)
    x2, idx2 = paddle.randn([3, 40, 32]), doc_mask(3, 40, 7)
    assert float((loaded(x2, idx2) - layer(x2, idx2)).abs().max()) < 1e-6


class SinkAttention(PackedAttention):
    """GPT-OSS-style layer: a learnable per-head sink, and a block mask."""

    def __init__(self, hidden=32, heads=2):
        super().__init__(hidden, heads)
        self.sink = self.create_parameter([heads], default_initializer=paddle.nn.initializer.Constant(0.5))

    def forward(self, x, startend_row_indices, block_mask):
        b, s, hidden = x.shape
        q, k, v = self.qkv(x).reshape([b, s, 3, self.heads, hidden // self.heads]).unbind(axis=2)
        out = pfm.flashmask_attention(q, k, v, startend_row_indices, causal=True,
                                      block_mask=block_mask, learnable_sink=self.sink)
        return out.reshape([b, s, hidden])


def test_to_static_with_sink_and_block_mask():
    """The sink's gradient comes out of the grad op under to_static too."""
    paddle.seed(1)
    layer = SinkAttention()
    s = 200
    x, idx = paddle.randn([2, s, 32]), doc_mask(2, s, 90)
    blocks = paddle.to_tensor(np.array([[[[1, 0], [1, 1]]]] * 2, np.int32))
    eager = layer(x, idx, blocks)
    eager.sum().backward()
    grads = (layer.qkv.weight.grad.clone(), layer.sink.grad.clone())
    layer.clear_gradients()
    spec = [paddle.static.InputSpec([None, s, 32], "float32"),
            paddle.static.InputSpec([None, 1, s, 1], "int32"),
            paddle.static.InputSpec([None, 1, 2, 2], "int32")]
    static = paddle.jit.to_static(layer, input_spec=spec, full_graph=True)
    out = static(x, idx, blocks)
    out.sum().backward()
    assert float((out - eager).abs().max()) < 1e-6
    assert float((layer.qkv.weight.grad - grads[0]).abs().max()) < 1e-5
    assert float((layer.sink.grad - grads[1]).abs().max()) < 1e-5
    assert float(grads[1].abs().max()) > 0


def test_to_static_with_a_frozen_sink():
    paddle.seed(2)
    layer = SinkAttention()
    layer.sink.stop_gradient = True
    x, idx = paddle.randn([1, 130, 32]), doc_mask(1, 130, 50)
    blocks = paddle.ones([1, 1, 2, 2], "int32")
    eager = layer(x, idx, blocks)
    static = paddle.jit.to_static(layer, full_graph=True)
    out = static(x, idx, blocks)
    out.sum().backward()
    assert float((out - eager).abs().max()) < 1e-6 and layer.sink.grad is None


def _causal_attention(q, k, v):
    return pfm.flashmask_attention(q, k, v, causal=True)


def _op_attrs(monkeypatch, env):
    """The attributes of our op in the program to_static builds under `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = [paddle.static.InputSpec([2, 16, 2, 8], "float32")] * 3
    fn = paddle.jit.to_static(_causal_attention, input_spec=spec, full_graph=True)
    ops = [op for op in fn.get_concrete_program(*spec)[0].main_program.global_block().ops
           if op.name().endswith("pfm_flashmask_attention")]
    assert len(ops) == 1
    return ops[0].attrs()


def test_switches_become_op_attributes(monkeypatch):
    """The user's switches reach the kernels as op attributes (the core reads no
    environment), so a saved program keeps the choices it was built with."""
    from paddle_flashmask import switches

    attrs = _op_attrs(monkeypatch, {"FLASHMASK_DETERMINISTIC": "0", "FLASHMASK_DISABLE_SM90": "0",
                                    "FLASHMASK_FORCE_LOW_SMEM_BWD": "0"})
    assert attrs["deterministic"] is False and attrs["kernel_options"] == 0
    attrs = _op_attrs(monkeypatch, {"FLASHMASK_DETERMINISTIC": "1", "FLASHMASK_DISABLE_SM90": "1",
                                    "FLASHMASK_FORCE_LOW_SMEM_BWD": "1"})
    assert attrs["deterministic"] is True
    assert attrs["kernel_options"] == switches.DISABLE_SM90 | switches.FORCE_LOW_SMEM_BWD

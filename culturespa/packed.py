"""The packed logprob pass: a lean forward of Llama-architecture decoders in bf16 on CPU.

``PackedDecoder`` computes what the engine's logprob mode reads (the next-token distribution at
each prompt's answer position and its label-trie slots) without padding waste in the linear
layers; see its docstring. Optionally (``compiled=True``) the element-wise stretches between the
matrix multiplies (RMSNorm; rotary positions with the scatter into the attention block and the
shared prefix's keys and values; mask and softmax; the gather back) run as kernels that
``torch.compile`` (inductor) fuses into one loop each, instead of several passes over memory.

What it gains, and where it runs (``PackedDecoder.gains_here``, the engine's ``forward="auto"``):
- bf16 on a CPU with native bf16 (AVX512-BF16/AMX) and oneDNN's bf16 kernels: 1.28x the model's own
  forward on P1 prompts (1.24 s against 1.58 s for 64 prompts, 1.45x against 1.86x the floor;
  compiled kernels included; 2-core Zen 5, 2026-11-25). There it runs by default.
- float32: 0.94-1.04x the model's own forward with SDPA attention (P1 prompts: 1.43x against 1.48x
  the floor; P3 prompts, 386 tokens median, where its padded-block attention costs more than the
  SDPA kernel: 1.58x against 1.48x; one core of a Zen 3 without bf16, CPU time, 2026-11-30): below
  the 1.2x that would pay for its code, so the model's own forward runs. ``forward="packed"``
  still selects it (tests compare the two).
- GPU: not used (the model's SDPA forward).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

log = logging.getLogger(__name__)


class PackedDecoder:
    """The logprob pass of a Llama-architecture decoder (Llama, Mistral, Qwen2: pre-norm RMSNorm,
    rotary positions, grouped-query attention, SiLU-gated MLP) without padding waste.

    The prompts of a batch (their own tokens plus their label-trie slots) are packed into one
    token sequence for every linear layer and element-wise op; only attention sees them as a
    padded [batch, longest] block, under the tree mask, against the shared prefix's keys and
    values (computed once per job). Grouped-query heads are grouped, not repeated. Weights are the
    model's own, with the q/k/v and gate/up projections concatenated into one matrix each, the
    RMSNorm weights and the attention's 1/sqrt(d) folded into the projections they feed, and in
    bf16 on CPU laid out once for oneDNN (a one-time copy of the decoder layers' weights; rebuilt
    if the model's parameters change, checked once per job), with the SiLU gate and the residual
    adds as post-ops of the matrix multiplies. The last layer runs its output projection and MLP
    only on the rows whose next-token distribution is read, and the output layer only on those
    rows.

    Numerically it is the model's own computation (eager attention, RMSNorm and softmax in fp32);
    results differ from the Hugging Face forward by rounding only.
    """

    def __init__(self, model):
        import torch

        self.model = model
        cfg = model.config
        inner = model.model
        self.rotary = inner.rotary_emb
        self.embed = inner.embed_tokens
        self.final_norm_w = inner.norm.weight
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        self.dtype = model.dtype
        self.layers = []
        with torch.no_grad():
            for layer in inner.layers:
                att, mlp = layer.self_attn, layer.mlp
                w_in = layer.input_layernorm.weight
                w_post = layer.post_attention_layernorm.weight
                scaling = float(getattr(att, "scaling", self.head_dim**-0.5))
                # the attention's 1/sqrt(d) goes into the query rows (rotary positions are linear)
                qkv = torch.cat([att.q_proj.weight * scaling, att.k_proj.weight, att.v_proj.weight]) * w_in
                qkv_b = None
                if att.q_proj.bias is not None:
                    qkv_b = torch.cat([att.q_proj.bias * scaling, att.k_proj.bias, att.v_proj.bias])
                gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]) * w_post
                self.layers.append(
                    dict(
                        qkv=qkv.contiguous(), qkv_b=qkv_b, o=att.o_proj.weight, o_b=att.o_proj.bias,
                        gate_up=gate_up.contiguous(), down=mlp.down_proj.weight,
                        eps_in=_rms_eps(layer.input_layernorm), eps_post=_rms_eps(layer.post_attention_layernorm),
                    )
                )
        self.prepacked = self._prepack()
        self.linear = self._linear()
        self.version = _param_version(model)

    def _prepack(self) -> bool:
        """bf16 on CPU: the linear weights reordered once into oneDNN's blocked layout (what
        ``torch.compile`` does when freezing), instead of F.linear re-packing them on every call
        (~4 % faster, bit-identical), with gate and up as separate matrices so that the SiLU, the
        gating product and the residual adds run as post-ops of the matmuls (no extra passes
        over the activations). Falls back to F.linear if the private ops are missing or disagree."""
        import torch

        if self.dtype != torch.bfloat16 or self.final_norm_w.device.type != "cpu":
            return False
        try:
            ops = torch.ops.mkldnn
            packed = []
            for L in self.layers:
                gate, up = L["gate_up"].chunk(2, dim=0)
                ws = {"qkv": L["qkv"], "o": L["o"], "gate": gate.contiguous(), "up": up.contiguous(), "down": L["down"]}
                packed.append({k: ops._reorder_linear_weight(w, 512) for k, w in ws.items()})
            if not self._post_ops_agree(packed[0]):
                return False
        except (AttributeError, RuntimeError):
            return False
        for L, pk in zip(self.layers, packed):
            del L["gate_up"]
            L.update(pk)
        return True

    def _post_ops_agree(self, packed: dict) -> bool:
        """The oneDNN calls on a probe against plain F.linear: the plain matmul bit for bit, the
        fused SiLU-gate and residual add up to bf16 rounding (they round once, not twice)."""
        import torch
        import torch.nn.functional as F

        ops, L0 = torch.ops.mkldnn, self.layers[0]
        g = torch.Generator().manual_seed(0)
        probe = torch.randn(8, L0["qkv"].shape[1], generator=g).to(self.dtype)
        if not torch.equal(ops._linear_pointwise(probe, packed["qkv"], L0["qkv_b"], "none", [], ""),
                           F.linear(probe, L0["qkv"], L0["qkv_b"])):
            return False
        gate, up = L0["gate_up"].chunk(2, dim=0)
        a = ops._linear_pointwise(probe, packed["gate"], None, "swish", [], "")
        a = ops._linear_pointwise.binary(probe, a, packed["up"], None, "mul")
        want = F.silu(F.linear(probe.float(), gate.float())) * F.linear(probe.float(), up.float())
        resid = torch.randn(8, L0["down"].shape[0], generator=g).to(self.dtype)
        x = ops._linear_pointwise.binary(a, resid, packed["down"], None, "add")
        want_x = resid.float() + F.linear(a.float(), L0["down"].float())
        close = lambda got, ref: bool(torch.allclose(got.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max()))  # noqa: E731
        return close(a, want) and close(x, want_x)

    @staticmethod
    def supports(model) -> bool:
        """Only plain (unquantised, unadapted) Llama-shaped decoders; anything else keeps the
        Hugging Face forward."""
        import torch

        cfg = getattr(model, "config", None)
        if getattr(cfg, "model_type", None) not in ("llama", "mistral", "qwen2"):
            return False
        if getattr(cfg, "hidden_act", "silu") != "silu" or getattr(cfg, "use_sliding_window", False):
            return False
        inner = getattr(model, "model", None)
        try:
            layers = list(inner.layers)
            names = ("q_proj", "k_proj", "v_proj", "o_proj")
            for layer in layers:
                linears = [getattr(layer.self_attn, n) for n in names]
                linears += [getattr(layer.mlp, n) for n in ("gate_proj", "up_proj", "down_proj")]
                if any(type(m) is not torch.nn.Linear for m in linears):
                    return False
                if any(m.weight.dtype != model.dtype for m in linears):
                    return False
                if type(layer.mlp).__name__ not in ("LlamaMLP", "MistralMLP", "Qwen2MLP"):
                    return False
                for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                    if type(norm).__name__ not in ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm"):
                        return False
            return bool(layers) and type(inner.norm).__name__.endswith("RMSNorm") and inner.rotary_emb is not None
        except AttributeError:
            return False

    @staticmethod
    def gains_here(model) -> tuple[bool, str]:
        """(whether the packed pass is worth using for ``model`` here, why). Only bf16 on a CPU
        that computes bf16 natively, with oneDNN's bf16 kernels: there it measured 1.28x the model's
        own forward (P1 prompts, Zen 5 with AVX512-BF16, 2026-11-25). In float32 it gains
        1.0-1.05x over the model's forward with SDPA attention (P1 and P3 prompts, Zen 3,
        2026-11-30): not used, the model's own forward is."""
        import torch

        from .models import cpu_bf16_native

        if model.device.type != "cpu" or model.dtype != torch.bfloat16:
            return False, f"{str(model.dtype).replace('torch.', '')} on {model.device.type}: no gain measured"
        native, why = cpu_bf16_native()
        if not native:
            return False, why
        try:
            if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return False, "this torch's oneDNN has no bf16 kernels"
        except (AttributeError, RuntimeError):
            return False, "this torch has no oneDNN"
        return True, why

    @staticmethod
    def copy_bytes(model) -> int:
        """Bytes of the (fused, possibly re-laid-out) decoder-layer weights kept beside the model's."""
        total = 0
        for layer in model.model.layers:
            for m in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
                      layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
                total += m.weight.numel() * m.weight.element_size()
        return total

    def stale(self) -> bool:
        return _param_version(self.model) != self.version

    def _rope(self, positions):
        cos, sin = self.rotary(self.final_norm_w.new_empty(0), positions[None])  # [1, N, d], model dtype
        h = self.head_dim // 2
        cos, sin = cos[0, :, None, :], sin[0, :, None, :]
        return cos[..., :h], cos[..., h:], sin[..., :h], sin[..., h:]

    def forward(self, part: "Part", prefix=None, want_kv: bool = False, compiled: bool = False):
        """Hidden states after the last layer (before the final norm, which the engine applies
        in float32 with the output layer) at the part's rows ``keep`` (all rows if None).
        ``prefix``: per layer (keys, values) [1, n_kv, P, d]. With ``want_kv`` also returns the keys
        and values of the (unpadded) part per layer, for a prefix. ``compiled``: the element-wise
        stretches run as compiled kernels (padded parts with a prefix; eager otherwise, and from
        the first compile failure on, logged)."""
        import torch

        st = self._start(part, kernels() if compiled and part.pad_idx is not None and prefix is not None else None)
        kvs = [] if want_kv else None
        last = len(self.layers) - 1
        with torch.inference_mode():
            for li, L in enumerate(self.layers):
                self._layer(L, st, prefix[li] if prefix is not None else None, li == last, kvs)
        return (st["x"], kvs) if want_kv else st["x"]

    def _start(self, part: "Part", fused: "_Kernels | None") -> dict:
        x = self.embed(part.ids)
        return dict(part=part, x=x, N=part.ids.shape[0], K=part.bias.shape[-1], rope=self._rope(part.positions),
                    fused=fused)

    def _eager_buffers(self, st: dict) -> None:
        """The eager attention's padded block and expanded mask, made once per part."""
        if "bias" in st:
            return
        part = st["part"]
        H, G, d = self.n_heads, self.n_kv, self.head_dim
        B, T, K = part.B, part.T, st["K"]
        # padding rows of the attention block stay zero in every layer: finite (they are masked,
        # and 0 * NaN is NaN)
        st["block"] = st["x"].new_zeros(B * T, (H + 2 * G) * d) if st["N"] != B * T else None
        # the mask per (batch, kv group) matrix, added by the scores' matmul itself
        st["bias"] = part.bias[:, None, None].expand(B, G, H // G, T, K).reshape(B * G, H // G * T, K)

    def _linear(self):
        """y = x W^T + b for this decoder's weights (oneDNN's call on prepacked ones)."""
        import torch
        import torch.nn.functional as F

        if self.prepacked:
            pointwise = torch.ops.mkldnn._linear_pointwise
            return lambda x, w, b=None: pointwise(x, w, b, "none", [], "")
        return F.linear

    def _layer(self, L: dict, st: dict, prefix, last: bool, kvs) -> None:
        """One decoder layer on one part, in place of ``st["x"]``."""
        import torch
        import torch.nn.functional as F

        part, x = st["part"], st["x"]
        att = None
        if st["fused"] is not None:
            try:
                att = self._attention_fused(L, st, prefix)
            except Exception as e:  # no C++ compiler, an inductor error: eager from here on
                disable_kernels(e)
                st["fused"] = None
        if att is None:
            att = self._attention_eager(L, st, prefix, kvs)
        if last and part.keep is not None:  # the last layer: only the rows that are read
            att, x = att.index_select(0, part.keep), x.index_select(0, part.keep)
        norm = st["fused"].norm if st["fused"] is not None else _rms
        if self.prepacked:  # residual adds, SiLU and gating run as oneDNN post-ops of the matmuls
            pointwise = torch.ops.mkldnn._linear_pointwise
            x = pointwise.binary(att, x, L["o"], L["o_b"], "add")
            h = norm(x, L["eps_post"])
            a = pointwise(h, L["gate"], None, "swish", [], "")
            a = pointwise.binary(h, a, L["up"], None, "mul")
            x = pointwise.binary(a, x, L["down"], None, "add")
        else:
            lin = self.linear
            x = x + lin(att, L["o"], L["o_b"])
            h = norm(x, L["eps_post"])
            g, u = lin(h, L["gate_up"]).chunk(2, dim=-1)
            a = F.silu(g)
            a.mul_(u)
            x = x + lin(a, L["down"])
        st["x"] = x

    def _attention_eager(self, L: dict, st: dict, prefix, kvs):
        """Input norm, q/k/v projection and attention: the packed rows [N, H*d] of the output."""
        import torch

        self._eager_buffers(st)
        part, N, K = st["part"], st["N"], st["K"]
        B, T = part.B, part.T
        H, G, d = self.n_heads, self.n_kv, self.head_dim
        R = H // G
        c1, c2, s1, s2 = st["rope"]
        qkv = self.linear(_rms(st["x"], L["eps_in"]), L["qkv"], L["qkv_b"])  # [N, (H+2G)d]
        qk = qkv[:, : (H + G) * d].view(N, H + G, d)
        x1, x2 = qk[..., : d // 2], qk[..., d // 2 :]
        t1, t2 = x1 * s2, x2 * s1
        x1.mul_(c1).sub_(t2)
        x2.mul_(c2).add_(t1)
        buf = qkv if st["block"] is None else st["block"].index_copy_(0, part.pad_idx, qkv)
        buf = buf.view(B, T, H + 2 * G, d)
        q = buf[:, :, :H].view(B, T, G, R, d).permute(0, 2, 3, 1, 4).reshape(B * G, R * T, d)
        k = buf[:, :, H : H + G].transpose(1, 2)
        v = buf[:, :, H + G :].transpose(1, 2)
        if kvs is not None:
            kvs.append((k[0].contiguous(), v[0].contiguous()))
        if prefix is not None:
            pk, pv = prefix
            k = torch.cat([pk.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(B, -1, -1, -1), v], dim=2)
        k, v = k.reshape(B * G, K, d), v.reshape(B * G, K, d)
        scores = torch.baddbmm(st["bias"], q, k.transpose(1, 2))  # [B*G, R*T, P+T], q pre-scaled
        # bf16 in, bf16 out: the CPU kernel computes in fp32 (equal to the model's fp32 softmax
        # then cast, and ~4x faster)
        probs = torch.softmax(scores, dim=-1)
        att = torch.bmm(probs, v).view(B, G, R, T, d).permute(0, 3, 1, 2, 4).reshape(B * T, H * d)
        return att if st["block"] is None else att.index_select(0, part.pad_idx)

    def _attention_fused(self, L: dict, st: dict, prefix):
        """What ``_attention_eager`` computes, with compiled kernels between the matrix
        multiplies (padded part with a prefix only)."""
        part, fused = st["part"], st["fused"]
        G, R = self.n_kv, self.n_heads // self.n_kv
        qkv = self.linear(fused.norm(st["x"], L["eps_in"]), L["qkv"], L["qkv_b"])
        return fused.attention(qkv, *st["rope"], part.pad_idx, prefix[0], prefix[1], part.bias, G, R)


@dataclass
class Part:
    """A batch for the packed pass: ``ids``/``positions`` [N] packed tokens; row n sits at
    ``pad_idx[n]`` of the [B*T] attention block (None: no padding), whose additive mask is
    ``bias`` [B, T, P+T] (P: prefix length); ``keep``: the rows read after the last layer."""

    ids: object
    positions: object
    pad_idx: object
    B: int
    T: int
    bias: object
    keep: object = None


def _rms(x, eps: float):
    """RMSNorm without its weight (folded into the next projection). The fused kernel computes in
    fp32 for bf16 input, equal to the model's upcast-normalise-downcast."""
    import torch.nn.functional as F

    return F.rms_norm(x, (x.shape[-1],), eps=eps)


def _rms_eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6))


def _param_version(model) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def additive_mask(allowed, dtype):
    """Booleans -> 0 where allowed, the dtype's most negative value elsewhere (eager attention)."""
    import torch

    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


# --- compiled element-wise kernels ------------------------------------------------------------
# Pure functions of tensors, so that torch.compile (inductor) turns the element-wise work in each
# into fused C++ loops: eagerly, each stretch is several passes over memory (the whole logprob pass
# measured 7-10 % slower on the 2-core CPU). The eager path above computes the same values, rounding
# aside: these compute element-wise steps in fp32 and round once.


def _norm(x, eps: float):
    xf = x.float()
    return (xf * xf.pow(2).mean(-1, keepdim=True).add(eps).rsqrt()).to(x.dtype)


def _attention_inputs(qkv, c1, c2, s1, s2, pad_idx, pk, pv, bias, G: int, R: int):
    """Rotary positions on the packed rows' queries and keys, the scatter into the padded
    [B, T] block, and the shared prefix's keys and values in front: q [B*G, R*T, d], k and v
    [B*G, P+T, d] (``bias`` [B, T, P+T] gives the block's shape)."""
    import torch

    B, T, K = bias.shape
    N, W = qkv.shape
    d = pk.shape[-1]
    H = G * R
    qk = qkv[:, : (H + G) * d].reshape(N, H + G, d)
    x1, x2 = qk[..., : d // 2], qk[..., d // 2 :]
    rows = torch.cat([torch.cat([x1 * c1 - x2 * s1, x2 * c2 + x1 * s2], dim=-1),
                      qkv[:, (H + G) * d :].reshape(N, G, d)], dim=1)
    block = rows.new_zeros(B * T, H + 2 * G, d).index_copy(0, pad_idx, rows).view(B, T, H + 2 * G, d)
    q = block[:, :, :H].reshape(B, T, G, R, d).permute(0, 2, 3, 1, 4).reshape(B * G, R * T, d)
    k = torch.cat([pk.expand(B, -1, -1, -1), block[:, :, H : H + G].transpose(1, 2)], dim=2)
    v = torch.cat([pv.expand(B, -1, -1, -1), block[:, :, H + G :].transpose(1, 2)], dim=2)
    return q, k.reshape(B * G, K, d), v.reshape(B * G, K, d)


def _masked_softmax(scores, bias, G: int, R: int):
    """softmax(scores + mask) in fp32, rounded once: scores [B*G, R*T, K], ``bias`` [B, T, K]."""
    import torch

    B, T, K = bias.shape
    s = scores.view(B, G, R, T, K).float() + bias[:, None, None].float()
    return torch.softmax(s, dim=-1).to(scores.dtype).view(B * G, R * T, K)


def _attention_output(o, pad_idx, bias, G: int, R: int):
    """Heads back side by side and the padded block back to the packed rows: [N, H*d]."""
    B, T, _ = bias.shape
    d = o.shape[-1]
    return o.view(B, G, R, T, d).permute(0, 3, 1, 2, 4).reshape(B * T, G * R * d).index_select(0, pad_idx)


def _attention(qkv, c1, c2, s1, s2, pad_idx, pk, pv, bias, G: int, R: int):
    """Attention from the packed q/k/v projection to the packed output rows [N, H*d]: one compiled
    region (the two batched matrix multiplies stay library calls inside it)."""
    import torch

    q, k, v = _attention_inputs(qkv, c1, c2, s1, s2, pad_idx, pk, pv, bias, G, R)
    probs = _masked_softmax(torch.bmm(q, k.transpose(1, 2)), bias, G, R)
    return _attention_output(torch.bmm(probs, v), pad_idx, bias, G, R)


class _Kernels:
    """The compiled kernels. Row counts, batch and block sizes are marked dynamic, so one
    compilation serves every batch; inductor caches the result on disk for later processes."""

    def __init__(self):
        import torch

        def compiled(fn, dynamic_args: dict[int, tuple[int, ...]]):
            inner = torch.compile(fn, fullgraph=True)

            def call(*args):
                for i, dims in dynamic_args.items():
                    for dim in dims:
                        torch._dynamo.maybe_mark_dynamic(args[i], dim)
                return inner(*args)

            return call

        self.norm = compiled(_norm, {0: (0,)})
        self.attention = compiled(_attention, {0: (0,), 1: (0,), 2: (0,), 3: (0,), 4: (0,), 5: (0,), 8: (0, 1, 2)})


_KERNELS: _Kernels | None = None
_KERNELS_OFF: str | None = None  # why compiled kernels are off in this process


def compiler_found() -> str | None:
    """The C++ compiler inductor would use on CPU, or None."""
    import os

    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def kernels() -> "_Kernels | None":
    """The process-wide compiled kernels, or None where they are off (no compiler, torch.compile
    missing, or an earlier failure)."""
    global _KERNELS, _KERNELS_OFF
    if _KERNELS is None and _KERNELS_OFF is None:
        if compiler_found() is None:
            _KERNELS_OFF = "no C++ compiler found (inductor needs one on CPU)"
            log.warning("compiled kernels off: %s; the packed pass runs eagerly", _KERNELS_OFF)
        else:
            try:
                _KERNELS = _Kernels()
            except Exception as e:  # torch.compile missing or broken
                disable_kernels(e)
    return _KERNELS


def disable_kernels(error: BaseException) -> None:
    """Compiled kernels off for the rest of the process, with the reason logged once."""
    global _KERNELS, _KERNELS_OFF
    _KERNELS = None
    if _KERNELS_OFF is None:
        _KERNELS_OFF = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        log.warning("compiled kernels off after an error (%s); the packed pass runs eagerly", _KERNELS_OFF)


def kernels_off_reason() -> str | None:
    return _KERNELS_OFF

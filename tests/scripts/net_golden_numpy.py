#!/usr/bin/python3
"""Golden vectors for any network config, from a NumPy port of ../shared/spec/net_reference.py.

The spec's own writer (`python3 net_reference.py golden OUT.h5`) needs PyTorch and writes the
GOLDEN config only. This is a second, independent float64 implementation of the same network
(forward, losses, greedy decoding) that writes a file in the layout of golden_small.h5 for any
config, so that `tg golden` can be run on configs where no dimension coincides with another.
Gradients are central finite differences in float64 (exact to ~1e-8 relative, far inside
`tg golden`'s 1e-3), so keep the config tiny.

usage: net_golden_numpy.py OUT.h5 [key=value ...] [batch=B] [seed=N]
       net_golden_numpy.py --check GOLDEN.h5   (this port against a file of the spec's writer:
                                                outputs, losses and greedy decoding)
"""
import math
import sys

import h5py
import numpy as np

DEFAULT = dict(S=3, T=2, n_scalars=2, c=10, layers=1, heads=2, head_dim=3, widen=3, n_steps=5,
               n_logits=7, p_feat=4, p_heads=3, p_layers=1, v_hidden=9, v_layers=2, quantiles=5)
FIELDS = list(DEFAULT)


def param_shapes(cfg):
    """(name, shape) in the order of Net.named_parameters()."""
    S, T, c, P = cfg["S"], cfg["T"], cfg["c"], cfg["p_feat"] * cfg["p_heads"]
    out = []

    def lin(name, i, o):
        out.extend([(name + ".weight", (o, i)), (name + ".bias", (o,))])

    def ln(name, n):
        out.extend([(name + ".weight", (n,)), (name + ".bias", (n,))])

    def block(name, cx, heads, hd, widen, cy=None):
        inner = heads * hd
        ln(name + ".norm_x", cx)
        if cy is not None:
            ln(name + ".norm_y", cy)
        lin(name + ".q", cx, inner)
        lin(name + ".k", cy or cx, inner)
        lin(name + ".v", cy or cx, inner)
        lin(name + ".o", inner, cx)
        ln(name + ".norm_mlp", cx)
        lin(name + ".mlp_in", cx, widen * cx)
        lin(name + ".mlp_out", widen * cx, cx)

    for i in range(3):
        lin(f"torso.scalar_proj.{i}", cfg["n_scalars"], S * S)
    for i in range(3):
        lin(f"torso.in_proj.{i}", S * T + 1, c)
    for l in range(cfg["layers"]):
        for s in range(3):
            block(f"torso.blocks.{l}.{s}", c, cfg["heads"], cfg["head_dim"], cfg["widen"])
    out.append(("policy.pos", (cfg["n_steps"], P)))
    lin("policy.embed", cfg["n_logits"] + 1, P)
    for l in range(2 * cfg["p_layers"]):
        block(f"policy.layers.{l}", P, cfg["p_heads"], cfg["p_feat"], cfg["widen"],
              cy=c if l % 2 else None)
    ln("policy.norm", P)
    lin("policy.out", P, cfg["n_logits"])
    dims = [P] + [cfg["v_hidden"]] * cfg["v_layers"]
    for l in range(cfg["v_layers"]):
        lin(f"value.hidden.{l}", dims[l], dims[l + 1])
    lin("value.out", dims[-1], cfg["quantiles"])
    return out


def layernorm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(p, name, x):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def block(p, name, x, heads, hd, y=None, causal=False):
    xn = layernorm(x, p[name + ".norm_x.weight"], p[name + ".norm_x.bias"])
    yn = xn if y is None else layernorm(y, p[name + ".norm_y.weight"], p[name + ".norm_y.bias"])
    N, Lx, _ = x.shape
    Ly = yn.shape[1]
    q = linear(p, name + ".q", xn).reshape(N, Lx, heads, hd).transpose(0, 2, 1, 3)
    k = linear(p, name + ".k", yn).reshape(N, Ly, heads, hd).transpose(0, 2, 1, 3)
    v = linear(p, name + ".v", yn).reshape(N, Ly, heads, hd).transpose(0, 2, 1, 3)
    logits = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if causal:
        logits = np.where(np.triu(np.ones((Lx, Ly), bool), 1), -np.inf, logits)
    logits = logits - logits.max(-1, keepdims=True)
    a = np.exp(logits)
    a = a / a.sum(-1, keepdims=True)
    o = (a @ v).transpose(0, 2, 1, 3).reshape(N, Lx, heads * hd)
    x = x + linear(p, name + ".o", o)
    h = layernorm(x, p[name + ".norm_mlp.weight"], p[name + ".norm_mlp.bias"])
    return x + linear(p, name + ".mlp_out", gelu(linear(p, name + ".mlp_in", h)))


def torso(p, cfg, tensors, scalars):
    B, T, S = tensors.shape[:3]
    c = cfg["c"]
    g = [tensors.transpose(0, 2, 3, 4, 1).reshape(B, S, S, S * T),
         tensors.transpose(0, 4, 2, 3, 1).reshape(B, S, S, S * T),
         tensors.transpose(0, 3, 4, 2, 1).reshape(B, S, S, S * T)]
    for i in range(3):
        s = linear(p, f"torso.scalar_proj.{i}", scalars).reshape(B, S, S, 1)
        g[i] = linear(p, f"torso.in_proj.{i}", np.concatenate([g[i], s], -1))
    for l in range(cfg["layers"]):
        for st, (m1, m2) in enumerate(((0, 1), (2, 0), (1, 2))):
            a = np.concatenate([g[m1], g[m2].transpose(0, 2, 1, 3)], 2).reshape(B * S, 2 * S, c)
            a = block(p, f"torso.blocks.{l}.{st}", a, cfg["heads"], cfg["head_dim"])
            a = a.reshape(B, S, 2 * S, c)
            g[m1] = a[:, :, :S]
            g[m2] = a[:, :, S:].transpose(0, 2, 1, 3)
    return np.stack(g, 1).reshape(B, 3 * S * S, c)


def policy(p, cfg, e, tokens_in):
    L = tokens_in.shape[1]
    W = p["policy.embed.weight"]
    x = W[:, tokens_in].transpose(1, 2, 0) + p["policy.embed.bias"] + p["policy.pos"][:L]
    for i in range(0, 2 * cfg["p_layers"], 2):
        x = block(p, f"policy.layers.{i}", x, cfg["p_heads"], cfg["p_feat"], causal=True)
        x = block(p, f"policy.layers.{i + 1}", x, cfg["p_heads"], cfg["p_feat"], y=e)
    h = layernorm(x, p["policy.norm.weight"], p["policy.norm.bias"])
    return linear(p, "policy.out", np.maximum(h, 0)), h


def value(p, cfg, h0):
    for l in range(cfg["v_layers"]):
        h0 = np.maximum(linear(p, f"value.hidden.{l}", h0), 0)
    return linear(p, "value.out", h0)


def forward(p, cfg, tensors, scalars, actions):
    e = torso(p, cfg, tensors, scalars)
    start = np.full((actions.shape[0], 1), cfg["n_logits"])
    logits, h = policy(p, cfg, e, np.concatenate([start, actions[:, :-1]], 1))
    return logits, value(p, cfg, h[:, 0]), e


def losses(p, cfg, tensors, scalars, actions, returns):
    logits, quant, _ = forward(p, cfg, tensors, scalars, actions)
    B = actions.shape[0]
    m = logits.max(-1, keepdims=True)
    lse = (np.log(np.exp(logits - m).sum(-1, keepdims=True)) + m)[..., 0]
    picked = np.take_along_axis(logits, actions[..., None], -1)[..., 0]
    pol = (lse - picked).sum() / B
    n = quant.shape[-1]
    tau = (np.arange(n) + 0.5) / n
    d = returns[:, None] - quant
    hub = np.where(np.abs(d) <= 1, 0.5 * d * d, np.abs(d) - 0.5)
    val = (np.abs(tau - (d < 0)) * hub).mean()
    return pol + val, pol, val


def greedy(p, cfg, tensors, scalars):
    e = torso(p, cfg, tensors, scalars)
    toks = np.full((e.shape[0], 1), cfg["n_logits"])
    quant = None
    for t in range(cfg["n_steps"]):
        logits, h = policy(p, cfg, e, toks)
        if t == 0:
            quant = value(p, cfg, h[:, 0])
        toks = np.concatenate([toks, logits[:, -1].argmax(-1)[:, None]], 1)
    return toks[:, 1:], quant


def check(path):
    with h5py.File(path, "r") as f:
        cfg = {k: int(f.attrs[k]) for k in FIELDS}
        p = {name: f[f"params/{name}"][()] for name, _ in param_shapes(cfg)}
        assert sorted(p) == sorted(f["params"].keys()), "parameter names differ from the file's"
        ins = {k: f[f"inputs/{k}"][()] for k in ("tensors", "scalars", "actions", "returns")}
        outs = {k: f[f"outputs/{k}"][()] for k in f["outputs"].keys()}
    logits, quant, e = forward(p, cfg, ins["tensors"], ins["scalars"], ins["actions"])
    total, pol, val = losses(p, cfg, ins["tensors"], ins["scalars"], ins["actions"],
                             ins["returns"])
    gtok, gq = greedy(p, cfg, ins["tensors"], ins["scalars"])
    worst = 0.0
    for name, have in (("torso", e), ("logits", logits), ("quantiles", quant),
                       ("greedy_quantiles", gq), ("loss_total", total), ("loss_policy", pol),
                       ("loss_value", val)):
        ref = outs[name]
        err = np.abs(have - ref).max() / max(np.abs(ref).max(), 1e-300)
        print(f"  {name:20s} rel err {err:.3e}")
        worst = max(worst, err)
    same = bool((gtok == outs["greedy_tokens"]).all())
    print(f"  greedy_tokens        {'equal' if same else 'DIFFER'}")
    return 0 if worst < 1e-10 and same else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        return check(sys.argv[2])
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) >= 2 else 2
    cfg, batch, seed = dict(DEFAULT), 2, 1
    for a in sys.argv[2:]:
        k, v = a.split("=")
        if k == "batch":
            batch = int(v)
        elif k == "seed":
            seed = int(v)
        elif k in cfg:
            cfg[k] = int(v)
        else:
            raise SystemExit(f"unknown key {k}")
    rng = np.random.default_rng(seed)
    p = {}
    for name, shape in param_shapes(cfg):
        fan_in = shape[1] if len(shape) == 2 else None
        if name == "policy.pos" or ".norm" in name:
            base = np.ones(shape) if name.endswith("norm_x.weight") or name.endswith(
                "norm_y.weight") or name.endswith("norm_mlp.weight") or name.endswith(
                "norm.weight") else np.zeros(shape)
            p[name] = base + 0.1 * rng.standard_normal(shape)
        elif fan_in:
            p[name] = rng.uniform(-1, 1, shape) * 1.5 / math.sqrt(fan_in)
        else:
            p[name] = 0.1 * rng.standard_normal(shape)
    p["policy.embed.weight"] *= 5
    p["policy.out.weight"] *= 5
    B, S, T = batch, cfg["S"], cfg["T"]
    tensors = rng.integers(-2, 3, (B, T, S, S, S)).astype(np.float64)
    scalars = rng.random((B, cfg["n_scalars"]))
    actions = rng.integers(0, cfg["n_logits"], (B, cfg["n_steps"]))
    returns = -rng.integers(1, 12, (B,)).astype(np.float64)
    total, pol, val = losses(p, cfg, tensors, scalars, actions, returns)
    grads = {}
    for name, arr in p.items():
        g = np.zeros_like(arr)
        flat, gf = arr.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            h = 1e-5 * max(1.0, abs(old))
            flat[i] = old + h
            up = losses(p, cfg, tensors, scalars, actions, returns)[0]
            flat[i] = old - h
            dn = losses(p, cfg, tensors, scalars, actions, returns)[0]
            flat[i] = old
            gf[i] = (up - dn) / (2 * h)
        grads[name] = g
    logits, quant, e = forward(p, cfg, tensors, scalars, actions)
    gtok, gq = greedy(p, cfg, tensors, scalars)
    with h5py.File(sys.argv[1], "w") as f:
        for k in FIELDS:
            f.attrs[k] = np.int64(cfg[k])
        f.attrs["description"] = "golden vectors from tests/scripts/net_golden_numpy.py (float64)"
        for name, _ in param_shapes(cfg):
            f[f"params/{name}"] = p[name]
            f[f"grads/{name}"] = grads[name]
        f["inputs/tensors"] = tensors
        f["inputs/scalars"] = scalars
        f["inputs/actions"] = actions.astype("int32")
        f["inputs/returns"] = returns
        f["outputs/torso"] = e
        f["outputs/logits"] = logits
        f["outputs/quantiles"] = quant
        f["outputs/loss_total"] = total
        f["outputs/loss_policy"] = pol
        f["outputs/loss_value"] = val
        f["outputs/greedy_tokens"] = gtok.astype("int32")
        f["outputs/greedy_quantiles"] = gq
    n = sum(a.size for a in p.values())
    print(f"wrote {sys.argv[1]}: {n} parameters, loss {total:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A character-level LSTM language model, trained on a few paragraphs of *Alice in Wonderland*.

The text (examples/data/tiny_text.txt) is the public-domain opening of chapter I of Lewis
Carroll's *Alice's Adventures in Wonderland* (1865). The model: an embedding table looked up
with ``gr.take``, one ``gr.nn.LSTMCell`` unrolled over ``--seq-len`` characters, and a
``gr.nn.Linear`` read-out; the loss is the mean cross-entropy of the next character. After
training, a second graph (batch 1, one time step, state fed back by hand) gets the weights by
name and samples text.

Run:  python examples/char_lstm.py [--steps 400] [--seq-len 16] [--hidden 96]
"""

from __future__ import annotations

import os
import sys

import numpy as np

import gorgon_rs as gr
from gorgon_rs import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Progress, copy_values, parser  # noqa: E402

TEXT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_text.txt")


def build_layers(g: gr.Graph, vocab: int, emb: int,
                 hidden: int) -> tuple[gr.Node, nn.LSTMCell, nn.Linear, list[gr.Node]]:
    """Embedding table, LSTM cell and read-out, with the same names in every graph."""
    embed = g.matrix(gr.float32, (vocab, emb), name="embed.weight", init=gr.init.gaussian(0.0, 0.5))
    cell = nn.LSTMCell(g, emb, hidden)
    head = nn.Linear(g, hidden, vocab)
    return embed, cell, head, [embed] + cell.parameters() + head.parameters()


def main() -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--emb", type=int, default=24)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--sample", type=int, default=300, help="characters to sample after training")
    ap.add_argument("--temperature", type=float, default=0.6)
    args = ap.parse_args()
    steps = args.steps if args.steps is not None else 400
    T, B, H = args.seq_len, args.batch_size, args.hidden

    with open(TEXT_PATH, encoding="utf-8") as f:
        text = " ".join(f.read().split())  # one paragraph-free stream of characters
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    V = len(chars)
    print(f"text: {len(text)} characters, vocabulary of {V}")

    gr.seed(0)
    g = gr.Graph()
    embed, cell, head, params = build_layers(g, V, args.emb, H)
    chunk = g.matrix(gr.int64, (B, T + 1), name="chunk")   # T inputs, each followed by its target
    state = None
    losses: list[gr.Node] = []
    for t in range(T):
        x_t = gr.take(embed, chunk[:, t], axis=0)           # (B, emb)
        state = cell(x_t, state)
        losses.append(nn.cross_entropy(head(state[0]), chunk[:, t + 1]))
    loss = gr.mean(gr.stack(losses))                        # mean over time steps (and batch)
    gr.grad(loss, params)

    solver = gr.solvers.Adam(lr=args.lr, clip=5.0)
    rng = np.random.default_rng(0)
    offsets = np.arange(T + 1)
    bar = Progress(steps, "training")
    running = None
    with gr.TapeMachine(g) as m:
        for step in range(1, steps + 1):
            starts = rng.integers(0, len(data) - T - 1, size=B)
            chunk.let(data[starts[:, None] + offsets])
            m.run_all()
            solver.step(params)
            lv = float(loss.value)
            m.reset()
            running = lv if running is None else 0.95 * running + 0.05 * lv
            bar.update(1, loss=running)
            if step == 1 or step % 100 == 0 or step == steps:
                print(f"step {step:4d}  loss {running:.3f}  (uniform guess: {np.log(V):.3f})", flush=True)
    bar.close()

    # sampling graph: one step for one sequence, the state passed in and out by hand
    gs = gr.Graph()
    embed_s, cell_s, head_s, params_s = build_layers(gs, V, args.emb, H)
    copy_values(params_s, params)
    x = gs.vector(gr.int64, 1, name="x")
    h = gs.matrix(gr.float32, (1, H), name="h")
    c = gs.matrix(gr.float32, (1, H), name="c")
    h2, c2 = cell_s(gr.take(embed_s, x, axis=0), (h, c))
    logits = head_s(h2)

    prompt = "Alice "
    h_val = np.zeros((1, H), np.float32)
    c_val = np.zeros((1, H), np.float32)
    out = list(prompt)
    srng = np.random.default_rng(1)
    with gr.TapeMachine(gs) as m:
        nxt = stoi[prompt[0]]
        for i in range(len(prompt) - 1 + args.sample):
            x.let(np.array([nxt], dtype=np.int64))
            h.let(h_val)
            c.let(c_val)
            m.run_all()
            h_val, c_val = h2.value, c2.value
            z = logits.value[0].astype(np.float64) / max(args.temperature, 1e-6)
            m.reset()
            if i + 1 < len(prompt):
                nxt = stoi[prompt[i + 1]]          # still feeding the prompt
                continue
            p = np.exp(z - z.max())
            nxt = int(srng.choice(V, p=p / p.sum()))
            out.append(chars[nxt])
    print("sample:", "".join(out))


if __name__ == "__main__":
    main()

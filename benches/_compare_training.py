"""The training-step workloads of ``benches/compare.py`` (``mlp`` and ``convnet``): one step of
forward, backward and SGD on gorgon_rs, PyTorch eager and JAX jit from the same initial weights
(the first losses are checked to agree)."""

from __future__ import annotations

from typing import Any

from _compare_harness import BenchBase, Case, Target


class TrainingWorkloads(BenchBase):
    """The training-step workloads, mixed into ``_compare_workloads.Bench``."""

    # -- 4. MLP step -----------------------------------------------------------------------------

    def mlp(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        batch, sizes, lr = 128, (784, 512, 256, 10), 0.01
        X = self.rng.standard_normal((batch, sizes[0])).astype(np.float32)
        Y = self.rng.integers(0, sizes[-1], batch).astype(np.int64)
        init_w = [(self.rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32) for i, o in zip(sizes, sizes[1:])]

        gr.seed(0)
        g = gr.Graph()
        x = g.matrix(gr.float32, (batch, sizes[0]), name="X")
        y = g.vector(gr.int64, batch, name="y")
        params = []
        h = x
        for k, w0 in enumerate(init_w):
            W = g.matrix(gr.float32, w0.shape, name=f"W{k}", value=w0)
            b = g.vector(gr.float32, w0.shape[1], name=f"b{k}", init=gr.init.zeros())
            params += [W, b]
            h = gr.nn.linear(h, W, b)
            if k < len(init_w) - 1:
                h = gr.relu(h)
        loss = gr.nn.cross_entropy(h, y)
        gr.grad(loss, params)
        m = gr.TapeMachine(g)
        opt = gr.solvers.SGD(lr=lr)
        x.let(X)
        y.let(Y)

        def gr_step() -> None:
            x.let(X)
            y.let(Y)
            m.run_all()
            opt.step(params)

        gr_step()
        first = float(loss.value)
        cases = {"gorgon_rs": Case(fn=gr_step)}
        labels = {"gorgon_rs": "TapeMachine.run_all + SGD.step", "numpy": "no autodiff: not run"}
        if self.libs.torch is not None:
            torch = self.libs.torch
            nn = torch.nn
            layers: list[Any] = []
            for k, w0 in enumerate(init_w):
                lin = nn.Linear(*w0.shape)
                with torch.no_grad():
                    lin.weight.copy_(torch.from_numpy(w0.T.copy()))
                    lin.bias.zero_()
                layers.append(lin)
                if k < len(init_w) - 1:
                    layers.append(nn.ReLU())
            model = nn.Sequential(*layers)
            topt = torch.optim.SGD(model.parameters(), lr=lr)
            tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

            def torch_step() -> None:
                topt.zero_grad()
                tl = torch.nn.functional.cross_entropy(model(tX), tY)
                tl.backward()
                topt.step()

            with torch.no_grad():
                tfirst = float(torch.nn.functional.cross_entropy(model(tX), tY))
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"MLP loss differs: gorgon_rs {first}, torch {tfirst}"
            cases["torch"] = Case(fn=torch_step)
            labels["torch"] = "eager forward+backward+SGD.step"
        if self.libs.jax is not None:
            jax, jnp = self.libs.jax, self.libs.jnp

            def jloss(p: list[Any], xb: Any, yb: Any) -> Any:
                hh = xb
                for k in range(0, len(p), 2):
                    hh = hh @ p[k] + p[k + 1]
                    if k < len(p) - 2:
                        hh = jax.nn.relu(hh)
                logp = jax.nn.log_softmax(hh, axis=-1)
                return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

            @jax.jit
            def jstep(p: list[Any], xb: Any, yb: Any) -> tuple[list[Any], Any]:
                lv, gs = jax.value_and_grad(jloss)(p, xb, yb)
                return [w - lr * gw for w, gw in zip(p, gs)], lv

            jp = [jnp.asarray(a) for w0 in init_w for a in (w0, np.zeros(w0.shape[1], np.float32))]
            jX, jY = jnp.asarray(X), jnp.asarray(Y)
            state = {"p": jp}
            _, jfirst = jstep(jp, jX, jY)
            assert abs(float(jfirst) - first) < 1e-3 * max(1.0, abs(first)), f"MLP loss differs: gorgon_rs {first}, jax {float(jfirst)}"

            def jax_step() -> None:
                p, lv = jstep(state["p"], jX, jY)
                lv.block_until_ready()
                state["p"] = p

            cases["jax"] = Case(fn=jax_step)
            labels["jax"] = "jit(value_and_grad + SGD update)"
        self.run_cases("mlp", "MLP step 784-512-256-10, batch 128", cases, labels=labels,
                       targets=[Target("time_le", 1.0, "jax", "≤ 1.0× JAX jit"), Target("time_le", 1.0, "torch", "≤ 1.0× PyTorch eager")])
        m.close()

    # -- 6. convnet step -------------------------------------------------------------------------

    def convnet(self) -> None:
        import numpy as np

        import gorgon_rs as gr

        batch, lr = (16 if self.quick else 64), 0.01
        X = self.rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        Y = self.rng.integers(0, 10, batch).astype(np.int64)

        def he(shape: tuple[int, ...], fan_in: int) -> Any:
            return (self.rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

        w = {"c1": he((32, 1, 3, 3), 9), "c2": he((64, 32, 3, 3), 288), "d1": he((3136, 128), 3136), "d2": he((128, 10), 128)}
        bias = {"c1": 32, "c2": 64, "d1": 128, "d2": 10}

        g = gr.Graph()
        x = g.tensor(gr.float32, X.shape, name="X")
        y = g.vector(gr.int64, batch, name="y")
        P = {k: g.tensor(gr.float32, v.shape, name=f"w_{k}", value=v) for k, v in w.items()}
        Bn = {k: g.vector(gr.float32, n, name=f"b_{k}", init=gr.init.zeros()) for k, n in bias.items()}
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(x, P["c1"], Bn["c1"], padding=1)), 2)
        h = gr.nn.max_pool2d(gr.relu(gr.nn.conv2d(h, P["c2"], Bn["c2"], padding=1)), 2)
        h = h.reshape(batch, 3136)
        h = gr.relu(gr.nn.linear(h, P["d1"], Bn["d1"]))
        logits = gr.nn.linear(h, P["d2"], Bn["d2"])
        loss = gr.nn.cross_entropy(logits, y)
        params = [*P.values(), *Bn.values()]
        gr.grad(loss, params)
        m = gr.TapeMachine(g)
        opt = gr.solvers.SGD(lr=lr)

        def gr_step() -> None:
            x.let(X)
            y.let(Y)
            m.run_all()
            opt.step(params)

        gr_step()
        first = float(loss.value)
        cases = {"gorgon_rs": Case(fn=gr_step)}
        labels = {"gorgon_rs": "TapeMachine.run_all + SGD.step"}
        if self.libs.torch is not None:
            torch = self.libs.torch
            nn = torch.nn
            model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
            with torch.no_grad():
                for mod, k in ((model[0], "c1"), (model[3], "c2")):
                    mod.weight.copy_(torch.from_numpy(w[k]))
                    mod.bias.zero_()
                for mod, k in ((model[7], "d1"), (model[9], "d2")):
                    mod.weight.copy_(torch.from_numpy(w[k].T.copy()))
                    mod.bias.zero_()
                tfirst = float(torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(Y)))
            assert abs(tfirst - first) < 1e-3 * max(1.0, abs(first)), f"convnet loss differs: gorgon_rs {first}, torch {tfirst}"
            topt = torch.optim.SGD(model.parameters(), lr=lr)
            tX, tY = torch.from_numpy(X), torch.from_numpy(Y)

            def torch_step() -> None:
                topt.zero_grad()
                torch.nn.functional.cross_entropy(model(tX), tY).backward()
                topt.step()

            cases["torch"] = Case(fn=torch_step)
            labels["torch"] = "eager forward+backward+SGD.step"
        if self.libs.jax is not None:
            jax, jnp = self.libs.jax, self.libs.jnp
            lax = jax.lax

            def conv(h: Any, k: Any, b: Any) -> Any:
                o = lax.conv_general_dilated(h, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
                return o + b[None, :, None, None]

            def pool(h: Any) -> Any:
                return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

            def jloss(p: dict[str, Any], xb: Any, yb: Any) -> Any:
                hh = pool(jax.nn.relu(conv(xb, p["c1"], p["bc1"])))
                hh = pool(jax.nn.relu(conv(hh, p["c2"], p["bc2"])))
                hh = hh.reshape(hh.shape[0], -1)
                hh = jax.nn.relu(hh @ p["d1"] + p["bd1"])
                lg = hh @ p["d2"] + p["bd2"]
                return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(lg, axis=-1), yb[:, None], axis=1))

            @jax.jit
            def jstep(p: dict[str, Any], xb: Any, yb: Any) -> tuple[dict[str, Any], Any]:
                lv, gs = jax.value_and_grad(jloss)(p, xb, yb)
                return jax.tree_util.tree_map(lambda a, da: a - lr * da, p, gs), lv

            jp = {k: jnp.asarray(v) for k, v in w.items()}
            jp.update({f"b{k}": jnp.zeros(n, jnp.float32) for k, n in bias.items()})
            jX, jY = jnp.asarray(X), jnp.asarray(Y)
            _, jfirst = jstep(jp, jX, jY)
            assert abs(float(jfirst) - first) < 1e-3 * max(1.0, abs(first)), f"convnet loss differs: gorgon_rs {first}, jax {float(jfirst)}"
            state = {"p": jp}

            def jax_step() -> None:
                p, lv = jstep(state["p"], jX, jY)
                lv.block_until_ready()
                state["p"] = p

            cases["jax"] = Case(fn=jax_step)
            labels["jax"] = "jit(value_and_grad + SGD update)"
        self.run_cases("convnet", f"convnet step, batch {batch}", cases, labels=labels,
                       targets=[Target("time_le", 1.0, "torch", "≤ 1.0× PyTorch eager"), Target("time_le", 1.5, "torch", "≤ 1.5× PyTorch (minimum)")])
        m.close()

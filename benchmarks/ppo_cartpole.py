"""Benchmark: rlviz PPO against Stable-Baselines3's PPO (rl-zoo tuned) on CartPole-v1.

Run ``python benchmarks/ppo_cartpole.py`` (needs ``pip install -r benchmarks/requirements.txt``;
``--skip-sb3``, ``--skip-rlviz``, ``--skip-grid``, ``--skip-env`` skip parts; ``--sb3-threads 1``
gives SB3 one torch thread like rlviz, which is faster for it too on a shared 2-core machine;
``--skip-sb3 --skip-grid --skip-env`` runs rlviz's PPO alone).
Both trainers run in the same process on the same machine, 3 seeds each, one after the other
(never two at once). First, the throughput of the two batched CartPoles.

Metric (evaluation excluded from the wall time): every ``EVAL_EVERY`` environment steps the
policy plays 10 greedy episodes of gymnasium's ``CartPole-v1`` (:func:`rlviz.agents.actor_critic.evaluate`,
the same function for both libraries). A run is *sustained* from the first evaluation after
which every evaluation is >= 475, provided the final 100-episode greedy mean is >= 475; the
figures are the environment steps and the training wall time (callbacks and evaluation
excluded) at that evaluation. Prints the medians over seeds and the ratio rlviz / SB3.

Then the 27-setting grid of chapter 13 (gamma x lambda x epsilon, 3 x 3 x 3) trained as one
batched computation, against one setting alone (times 27 for the sequential estimate) and,
with ``--sequential``, 27 real sequential runs. No assertion: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import numpy as np
import torch

from rlviz.agents.actor_critic import evaluate
from rlviz.agents.ppo import PPOConfig, train
from rlviz.experiments.ch13 import grid_configs

EVAL_EVERY = 2048
THRESHOLD = 475.0
SEEDS = (0, 1, 2)
RLVIZ = PPOConfig()  # the book's fast setting (rlviz.agents.ppo defaults)
SB3_STEPS = 100_000  # rl-zoo's budget for CartPole-v1


def sustained(evals, final_mean):
    """(steps, seconds) of the first evaluation from which all are >= 475, or (inf, inf)."""
    if final_mean < THRESHOLD:
        return math_inf()
    start = None
    for i, (_, _, score) in enumerate(evals):
        if score >= THRESHOLD and start is None:
            start = i
        elif score < THRESHOLD:
            start = None
    if start is None:
        return math_inf()
    return evals[start][0], evals[start][1]


def math_inf():
    return float("inf"), float("inf")


def run_rlviz(seed: int, config: PPOConfig = RLVIZ):
    evals = []
    t_start = time.perf_counter()
    evaluation_time = [0.0]

    def callback(update, steps, agent):
        if steps % EVAL_EVERY == 0:
            t0 = time.perf_counter()
            trained = t0 - t_start - evaluation_time[0]
            score = evaluate(agent.policy(0), 10, seed=10_000 + steps).mean()
            evals.append((steps, trained, score))
            evaluation_time[0] += time.perf_counter() - t0

    res = train(dataclasses.replace(config, seed=seed), callback=callback)
    final = evaluate(res.agent.policy(0), 100, seed=1).mean()
    return {
        "evals": evals,
        "final": final,
        "train_seconds": res.train_seconds,
        "sustained": sustained(evals, final),
    }


def run_sb3(seed: int):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def lin(v):  # SB3's schedule: a function of the remaining progress (1 -> 0)
        return lambda progress_remaining: progress_remaining * v

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=lin(1e-3),
        clip_range=lin(0.2),
        seed=seed,
        device="cpu",
        verbose=0,
    )

    def probs(obs):
        with torch.no_grad():
            d = model.policy.get_distribution(torch.as_tensor(obs, dtype=torch.float32))
            return d.distribution.probs.numpy()

    evals = []
    evaluation_time = [0.0]
    t_start = [0.0]

    class Eval(BaseCallback):
        def _on_training_start(self):
            t_start[0] = time.perf_counter()

        def _on_step(self):
            steps = self.num_timesteps
            if steps % EVAL_EVERY == 0:
                t0 = time.perf_counter()
                trained = t0 - t_start[0] - evaluation_time[0]
                evals.append((steps, trained, evaluate(probs, 10, seed=10_000 + steps).mean()))
                evaluation_time[0] += time.perf_counter() - t0
            return True

    t0 = time.perf_counter()
    model.learn(SB3_STEPS, callback=Eval())
    train_seconds = time.perf_counter() - t0 - evaluation_time[0]
    final = evaluate(probs, 100, seed=1).mean()
    return {
        "evals": evals,
        "final": final,
        "train_seconds": train_seconds,
        "sustained": sustained(evals, final),
    }


def report(name, run):
    """Run ``run(seed)`` for each seed, printing each result as it comes; returns the medians."""
    runs = []
    for s in SEEDS:
        r = run(s)
        runs.append(r)
        print(
            f"  {name} seed {s}: sustained >= 475 from {r['sustained'][0]:.0f} steps, "
            f"{r['sustained'][1]:.2f} s of training; whole run {r['train_seconds']:.2f} s; "
            f"final 100-episode mean {r['final']:.1f} (load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    steps = [r["sustained"][0] for r in runs]
    secs = [r["sustained"][1] for r in runs]
    med = statistics.median(secs), statistics.median(steps)
    print(f"  {name} median: {med[1]:.0f} steps, {med[0]:.2f} s", flush=True)
    return med


def env_throughput(steps: int = 2000):
    """Steps per second of rlviz's BatchedCartPole and gymnasium's CartPoleVectorEnv, random actions."""
    import gymnasium as gym

    from rlviz.agents.cartpole import BatchedCartPole

    for n in (8, 1024):
        actions = np.random.default_rng(0).integers(0, 2, (steps, n))
        ours = BatchedCartPole(n)
        ours.reset()
        theirs = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")
        theirs.reset(seed=0)
        for name, env in (
            ("rlviz BatchedCartPole (same-step autoreset)", ours),
            ("gymnasium CartPoleVectorEnv (next-step autoreset)", theirs),
        ):
            t0 = time.perf_counter()
            for a in actions:
                env.step(a)
            dt = time.perf_counter() - t0
            print(
                f"  N = {n:4d}: {name}: {steps * n / dt / 1e6:.2f} M env steps/s "
                f"({dt / steps * 1e6:.0f} us per step call)"
            )


def machine():
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}"
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-sb3", action="store_true")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-env", action="store_true", help="skip the environment throughput")
    ap.add_argument(
        "--skip-rlviz", action="store_true", help="skip the rlviz PPO runs (and the ratio)"
    )
    ap.add_argument("--sequential", action="store_true", help="also run the 27 settings one by one")
    ap.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="torch threads for SB3 (default: torch's default, all cores)",
    )
    args = ap.parse_args()
    machine()
    if not args.skip_env:
        print("CartPole throughput, random actions:")
        env_throughput()
    if not args.skip_rlviz:
        print(f"rlviz PPO {RLVIZ}")
        ours = report("rlviz", run_rlviz)
    if not args.skip_sb3:
        import stable_baselines3

        if args.sb3_threads:
            torch.set_num_threads(args.sb3_threads)
        print(
            f"Stable-Baselines3 {stable_baselines3.__version__} PPO, rl-zoo CartPole-v1 "
            f"hyperparameters, {SB3_STEPS} steps, {torch.get_num_threads()} torch threads"
        )
        theirs = report("SB3", run_sb3)
    if not (args.skip_sb3 or args.skip_rlviz):
        print(f"ratio of median times to sustained >= 475, rlviz / SB3: {ours[0] / theirs[0]:.3f}")
        print(f"ratio of median steps, rlviz / SB3: {ours[1] / theirs[1]:.3f}")
    if not args.skip_grid:
        configs = grid_configs()
        t0 = time.perf_counter()
        res = train(configs)
        grid = time.perf_counter() - t0
        t0 = time.perf_counter()
        train(configs[13])
        one = time.perf_counter() - t0
        print(
            f"grid of {len(configs)} settings x {RLVIZ.total_steps} steps in one batched run: "
            f"{grid:.1f} s; one setting alone {one:.2f} s, x27 = {27 * one:.1f} s "
            f"(batched is {27 * one / grid:.1f}x faster)"
        )
        t0 = time.perf_counter()
        train(configs, threads=2)
        two = time.perf_counter() - t0
        print(f"the same batched grid with 2 torch threads: {two:.1f} s")
        if args.sequential:
            t0 = time.perf_counter()
            for c in configs:
                train(c)
            seq = time.perf_counter() - t0
            print(f"27 sequential runs: {seq:.1f} s (batched is {seq / grid:.1f}x faster)")
        final = np.asarray(res.log("return"))[-1]
        print(
            f"grid: settings whose last-episode mean return is >= 475 at the end: "
            f"{int((final >= THRESHOLD).sum())} of {len(configs)}"
        )
    machine()


if __name__ == "__main__":
    main()

"""Benchmark: rlviz's GAE against the plain loop over numpy rows and a single memory pass.

Run ``python benchmarks/gae.py``. A rollout of T=2048 steps by N=64 environments, float32,
with random terminations and truncations (about 1 in 200 steps each). Prints the median
wall time of

* (a) the plain reverse loop over rows, written as Stable-Baselines3's rollout buffer does it
  (one numpy row operation per step; the truncation bootstrap folded into the rewards first,
  the SB3 way, since its loop knows only one ``done`` flag);
* rlviz.fn.returns.gae (validates its inputs, keeps termination and truncation apart);
* (b) one memory pass over the same arrays (``np.add(a, b, out=c)``): a lower bound no
  estimator can beat, since it must at least read the rewards and values and write the result;

and the ratios (a)/rlviz and rlviz/(b). No assertion: timings depend on the machine.
"""

from __future__ import annotations

import time

import numpy as np

from rlviz.fn.returns import Transitions, gae, gae_reference

T, N = 2048, 64
GAMMA, LAM = 0.99, 0.95


def sb3_style_loop(rewards, values, dones, last_values, gamma, lam):
    """The loop of SB3's ``RolloutBuffer.compute_returns_and_advantage`` (dones = episode ended)."""
    adv = np.zeros_like(rewards)
    last_gae = 0.0
    for step in reversed(range(rewards.shape[0])):
        if step == rewards.shape[0] - 1:
            next_non_terminal = 1.0 - dones[step]
            next_values = last_values
        else:
            next_non_terminal = 1.0 - dones[step]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae = delta + gamma * lam * next_non_terminal * last_gae
        adv[step] = last_gae
    return adv


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def rollout(rng, dtype):
    r = rng.normal(size=(T, N)).astype(dtype)
    v = rng.normal(size=(T, N)).astype(dtype)
    v_final = rng.normal(size=(T, N)).astype(dtype)
    v_T = rng.normal(size=N).astype(dtype)
    term = rng.random((T, N)) < 0.005
    trunc = (rng.random((T, N)) < 0.005) & ~term
    return r, v, v_final, v_T, term, trunc


def main() -> None:
    rng = np.random.default_rng(0)
    r, v, v_final, v_T, term, trunc = rollout(rng, np.float32)
    tr = Transitions(r_t=r, v_t=v, v_T=v_T, terminated_t=term, truncated_t=trunc, v_final_t=v_final)
    # SB3's convention: one `dones` array, truncation bootstrap added to the reward
    dones = (term | trunc).astype(np.float32)
    r_sb3 = r + GAMMA * np.where(trunc, v_final, 0).astype(np.float32)

    # same answer first (float64 against the reference loop; float32 against SB3's loop)
    ours = gae(tr, gamma=GAMMA, lam=LAM)
    theirs = sb3_style_loop(r_sb3, v, dones, v_T, GAMMA, LAM)
    sub = slice(0, 8)
    tr64 = Transitions(
        r_t=r[:, sub].astype(np.float64),
        v_t=v[:, sub].astype(np.float64),
        v_T=v_T[sub].astype(np.float64),
        terminated_t=term[:, sub],
        truncated_t=trunc[:, sub],
        v_final_t=v_final[:, sub].astype(np.float64),
    )
    err64 = np.abs(
        gae(tr64, gamma=GAMMA, lam=LAM) - gae_reference(tr64, gamma=GAMMA, lam=LAM)
    ).max()
    print(f"rollout T={T}, N={N}, float32, gamma={GAMMA}, lambda={LAM}")
    print(
        f"agreement: float64 max |gae - gae_reference| = {err64:.1e} (8 envs); "
        f"float32 max |gae - SB3-style loop| = {np.abs(ours - theirs).max():.1e}"
    )

    out = np.empty_like(r)
    t_loop = median_ms(lambda: sb3_style_loop(r_sb3, v, dones, v_T, GAMMA, LAM), 30)
    t_ours = median_ms(lambda: gae(tr, gamma=GAMMA, lam=LAM), 200)
    t_mem = median_ms(lambda: np.add(r, v, out=out), 500)
    print(f"(a) plain loop over rows (SB3 style): {t_loop:8.3f} ms (median)")
    print(f"    rlviz.fn.returns.gae:             {t_ours:8.3f} ms")
    print(f"(b) one memory pass (np.add, out=):   {t_mem:8.3f} ms")
    print(f"ratio (a) / rlviz = {t_loop / t_ours:.1f}x faster than the loop")
    print(f"ratio rlviz / (b) = {t_ours / t_mem:.0f}x slower than one memory pass")


if __name__ == "__main__":
    main()

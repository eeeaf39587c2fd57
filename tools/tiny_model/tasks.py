"""The demo's two tasks, seeded and stdlib-only: arithmetic questions answered in a chat turn
ending with \\boxed{}, and Lotka-Volterra predator-prey forecasting as LLMTIME text."""
import random


def arithmetic_item(rng):
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        q, c = f"What is {a} + {b}?", a + b
        work = f"{a} + {b} = {c}"
    else:
        a, b = max(a, b), min(a, b)
        q, c = f"What is {a} - {b}?", a - b
        work = f"{a} - {b} = {c}"
    return q, f"{work}, so the answer is \\boxed{{{c}}}.", str(c)


def arithmetic(n, seed, exclude=()):
    """n distinct questions (none in exclude) as (question, answer text, answer)."""
    rng, seen, out = random.Random(seed), set(exclude), []
    while len(out) < n:
        item = arithmetic_item(rng)
        if item[0] not in seen:
            seen.add(item[0])
            out.append(item)
    return out


def lotka_volterra(rng, steps=100, dt=0.25, sub=4):
    """prey, predator at steps time points: RK4 on dx = a x - b x y, dy = d x y - g y."""
    a, b = rng.uniform(0.8, 1.2), rng.uniform(0.35, 0.5)
    d, g = rng.uniform(0.08, 0.12), rng.uniform(0.35, 0.5)
    x, y = rng.uniform(2, 6), rng.uniform(1, 3)
    f = lambda x, y: (a * x - b * x * y, d * x * y - g * y)
    out, h = [], dt / sub
    for _ in range(steps):
        out.append((x, y))
        for _ in range(sub):
            k1 = f(x, y)
            k2 = f(x + h / 2 * k1[0], y + h / 2 * k1[1])
            k3 = f(x + h / 2 * k2[0], y + h / 2 * k2[1])
            k4 = f(x + h * k3[0], y + h * k3[1])
            x += h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            y += h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return out


def trajectories(n, seed):
    rng = random.Random(seed)
    return [lotka_volterra(rng) for _ in range(n)]

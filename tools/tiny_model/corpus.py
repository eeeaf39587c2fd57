"""Synthetic text for the embedded default model (models/tiny), seeded and stdlib-only.

Pretraining documents teach skills in raw text: arithmetic facts in several phrasings (some
restate a question before answering it, which teaches copying its numbers), and number series
in LLMTIME's text form. A third stage (stage3_documents) adds long series: one-dimensional ones
that oscillate, and two-dimensional ones that never do (trends, random walks, relaxation to a
rest point), so the model knows the two-dimensional format and long contexts but has never
seen two coupled oscillating quantities. The demo's tasks (tasks.py) then ask for what the
pretraining never shows: answers in a chat format with a \\boxed{} answer, and forecasts of
two-dimensional predator-prey cycles. That gap is what the demo's LoRA adapters close.
"""
import math
import random

PHRASES_ADD = [
    "{a} + {b} = {c}",
    "{a} plus {b} equals {c}.",
    "The sum of {a} and {b} is {c}.",
    "Adding {b} to {a} gives {c}.",
    "{a} + {b} is {c}.",
    "What is {a} + {b}? {a} + {b} = {c}.",
    "Q: {a} + {b} = ? A: {a} + {b} = {c}",
]
PHRASES_SUB = [
    "{a} - {b} = {c}",
    "{a} minus {b} equals {c}.",
    "The difference of {a} and {b} is {c}.",
    "Taking {b} from {a} leaves {c}.",
    "{a} - {b} is {c}.",
    "What is {a} - {b}? {a} - {b} = {c}.",
    "Q: {a} - {b} = ? A: {a} - {b} = {c}",
]


MAX_OPERAND = 25  # small enough that a model of 2.4M parameters learns every fact


def arithmetic_doc(rng):
    """Eight facts of addition and subtraction of numbers up to MAX_OPERAND, one per line."""
    lines = []
    for _ in range(8):
        a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
        if rng.random() < 0.5:
            lines.append(rng.choice(PHRASES_ADD).format(a=a, b=b, c=a + b))
        else:
            a, b = max(a, b), min(a, b)
            lines.append(rng.choice(PHRASES_SUB).format(a=a, b=b, c=a - b))
    return "\n".join(lines)


def llmtime_1d(values, decimals=2, target=10.0):
    """LLMTIME text of a one-dimensional series: scaled so the largest |value| is target."""
    top = max(abs(v) for v in values) or 1.0
    alpha = target / top
    return ";".join("%.*f" % (decimals, v * alpha) for v in values)


def series_doc(rng, steps=60):
    """A one-dimensional series: a sine, a damped oscillation, a trend or a random walk."""
    kind = rng.randrange(4)
    t = range(steps)
    if kind == 0:
        period, phase, off = rng.uniform(8, 30), rng.uniform(0, 6.3), rng.uniform(1.2, 3)
        v = [off + math.sin(2 * math.pi * i / period + phase) for i in t]
    elif kind == 1:
        period, decay = rng.uniform(8, 25), rng.uniform(0.01, 0.06)
        v = [2 + math.exp(-decay * i) * math.cos(2 * math.pi * i / period) for i in t]
    elif kind == 2:
        a, b = rng.uniform(0.5, 3), rng.uniform(-0.03, 0.06)
        v = [a + b * i + rng.gauss(0, 0.03) for i in t]
    else:
        x, v = rng.uniform(2, 5), []
        for _ in t:
            x = max(0.1, x + rng.gauss(0, 0.15))
            v.append(x)
    return llmtime_1d(v)


def documents(n, seed):
    rng = random.Random(seed)
    for _ in range(n):
        yield arithmetic_doc(rng) if rng.random() < 0.6 else series_doc(rng)


def llmtime_2d(pairs, decimals=2, target=10.0):
    """LLMTIME text of a two-dimensional series: "x,y" per step, one scale for both."""
    top = max(max(abs(x), abs(y)) for x, y in pairs) or 1.0
    alpha = target / top
    return ";".join("%.*f,%.*f" % (decimals, x * alpha, decimals, y * alpha) for x, y in pairs)


def long_series_doc(rng):
    """A one-dimensional oscillation of 60 to 160 steps, with periods as long as 50 steps."""
    steps, period = rng.randint(60, 160), rng.uniform(8, 50)
    amp, skew = rng.uniform(0.3, 1), rng.uniform(0, 0.6)  # skew: a second harmonic, sharper peaks
    phase, off = rng.uniform(0, 6.3), amp * (1 + skew) * rng.uniform(1.1, 2.5)
    w = 2 * math.pi / period
    return llmtime_1d([off + amp * (math.sin(w * i + phase) + skew * math.sin(2 * w * i + phase))
                       for i in range(steps)])


def series2d_doc(rng):
    """A two-dimensional series of 40 to 95 steps that does not oscillate: two trends, two
    correlated random walks, or two quantities relaxing to a rest point."""
    steps, kind = rng.randint(40, 95), rng.randrange(3)
    if kind == 0:
        x0, y0 = rng.uniform(0.5, 4), rng.uniform(0.5, 4)
        bx, by = rng.uniform(-0.03, 0.05), rng.uniform(-0.03, 0.05)
        pairs = [(x0 + bx * i + rng.gauss(0, 0.03), y0 + by * i + rng.gauss(0, 0.03))
                 for i in range(steps)]
    elif kind == 1:
        x, y, rho, pairs = rng.uniform(2, 5), rng.uniform(2, 5), rng.uniform(-0.8, 0.8), []
        for _ in range(steps):
            e1, e2 = rng.gauss(0, 0.12), rng.gauss(0, 0.12)
            x, y = max(0.1, x + e1), max(0.1, y + rho * e1 + math.sqrt(1 - rho * rho) * e2)
            pairs.append((x, y))
    else:
        xs, ys = rng.uniform(1, 5), rng.uniform(1, 5)
        x, y = rng.uniform(0.5, 8), rng.uniform(0.5, 8)
        kx, ky = rng.uniform(0.02, 0.15), rng.uniform(0.02, 0.15)
        pairs = [(xs + (x - xs) * math.exp(-kx * i), ys + (y - ys) * math.exp(-ky * i))
                 for i in range(steps)]
    return llmtime_2d(pairs)


def stage3_documents(n, seed):
    """The third stage's mixture: arithmetic (so it is not forgotten), long oscillations, and
    non-oscillating two-dimensional series."""
    rng = random.Random(seed)
    for _ in range(n):
        u = rng.random()
        yield (arithmetic_doc(rng) if u < 0.4 else long_series_doc(rng) if u < 0.7
               else series2d_doc(rng))

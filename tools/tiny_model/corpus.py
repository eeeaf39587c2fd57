"""Synthetic text for the embedded default model (models/tiny), seeded and stdlib-only.

Pretraining documents teach two skills in raw text: arithmetic facts in several phrasings (some
restate a question before answering it, which teaches copying its numbers), and
one-dimensional number series in LLMTIME's text form. The demo's tasks (tasks.py) then ask for
what the pretraining never shows: answers in a chat format with a \\boxed{} answer, and forecasts
of two-dimensional predator-prey series. That gap is what the demo's LoRA adapters close.
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

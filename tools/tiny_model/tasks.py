"""The demo's arithmetic task, seeded and stdlib-only: questions answered in a chat turn that
ends with \\boxed{}."""
import random


from corpus import MAX_OPERAND


def arithmetic_item(rng):
    a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
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
